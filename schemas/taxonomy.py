"""Threat taxonomies used to tag detections: OWASP Agentic (ASI), OWASP NHI, MITRE ATLAS.

Rules and detectors tag findings with ids such as ``ASI01``, ``NHI5`` or ``AML.T0086``; alerts
carry them as OCSF ``finding_info.tags`` and ``finding_info.attacks``. ATLAS ids change between
versions, so every alert records :data:`ATLAS_VERSION`.
"""

from __future__ import annotations

import re

ATLAS_VERSION = "ATLAS 5.1"

OWASP_ASI: dict[str, str] = {
    "ASI01": "Agent Goal Hijack",
    "ASI02": "Tool Misuse and Exploitation",
    "ASI03": "Identity and Privilege Abuse",
    "ASI04": "Agentic Supply Chain Vulnerabilities",
    "ASI05": "Unexpected Code Execution (RCE)",
    "ASI06": "Memory & Context Poisoning",
    "ASI07": "Insecure Inter-Agent Communication",
    "ASI08": "Cascading Failures",
    "ASI09": "Human-Agent Trust Exploitation",
    "ASI10": "Rogue Agents",
}

OWASP_NHI: dict[str, str] = {
    "NHI1": "Improper Offboarding",
    "NHI2": "Secret Leakage",
    "NHI3": "Vulnerable Third-Party NHI",
    "NHI4": "Insecure Authentication",
    "NHI5": "Overprivileged NHI",
    "NHI6": "Insecure Cloud Deployment Configurations",
    "NHI7": "Long-Lived Secrets",
    "NHI8": "Environment Isolation",
    "NHI9": "NHI Reuse",
    "NHI10": "Human Use of NHI",
}

#: technique id -> (technique name, tactic id, tactic name)
ATLAS_TECHNIQUES: dict[str, tuple[str, str, str]] = {
    "AML.T0051": ("LLM Prompt Injection", "AML.TA0005", "Execution"),
    "AML.T0051.000": ("LLM Prompt Injection: Direct", "AML.TA0005", "Execution"),
    "AML.T0051.001": ("LLM Prompt Injection: Indirect", "AML.TA0005", "Execution"),
    "AML.T0053": ("AI Agent Tool Invocation", "AML.TA0005", "Execution"),
    "AML.T0054": ("LLM Jailbreak", "AML.TA0012", "Privilege Escalation"),
    "AML.T0055": ("Unsecured Credentials", "AML.TA0013", "Credential Access"),
    "AML.T0057": ("LLM Data Leakage", "AML.TA0010", "Exfiltration"),
    "AML.T0012": ("Valid Accounts", "AML.TA0012", "Privilege Escalation"),
    "AML.T0080": ("AI Agent Context Poisoning", "AML.TA0006", "Persistence"),
    "AML.T0081": ("Modify AI Agent Configuration", "AML.TA0006", "Persistence"),
    "AML.T0083": ("Credentials from AI Agent Configuration", "AML.TA0013", "Credential Access"),
    "AML.T0085": ("Data from AI Services", "AML.TA0009", "Collection"),
    "AML.T0086": ("Exfiltration via AI Agent Tool Invocation", "AML.TA0010", "Exfiltration"),
    "AML.T0098": ("AI Agent Tool Credential Harvesting", "AML.TA0013", "Credential Access"),
    "AML.T0101": ("Data Destruction via AI Agent Tool Invocation", "AML.TA0011", "Impact"),
    "AML.T0103": ("Deploy AI Agent", "AML.TA0005", "Execution"),
    "AML.T0034": ("Cost Harvesting", "AML.TA0011", "Impact"),
    "AML.T0025": ("Exfiltration via Cyber Means", "AML.TA0010", "Exfiltration"),
}

_NHI_RE = re.compile(r"^NHI(10|[1-9])(:2025)?$")
_ASI_RE = re.compile(r"^ASI(0[1-9]|10)$")
_ATLAS_RE = re.compile(r"^AML\.T\d{4}(\.\d{3})?$")


def tag_kind(tag: str) -> str | None:
    """``owasp_asi``, ``owasp_nhi``, ``atlas`` or None for a free-form tag."""
    if _ASI_RE.match(tag):
        return "owasp_asi"
    if _NHI_RE.match(tag):
        return "owasp_nhi"
    if _ATLAS_RE.match(tag):
        return "atlas"
    return None


def normalize_tag(tag: str) -> str:
    """``NHI5:2025`` -> ``NHI5``; other tags unchanged."""
    return tag.split(":", 1)[0] if _NHI_RE.match(tag) else tag
