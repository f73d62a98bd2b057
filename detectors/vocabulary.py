"""The words the tool catalog reads in tool names, argument names and resource types.

Tool names are short phrases (``send_money``, ``vault.readSecret``, ``mcp__github__create_issue``):
a verb says what the call does, a noun what it does it to. Each class below is a set of
lower-case words; a deployment extends any class in its catalog file (``words:``) without
editing code. Plural nouns match their singular (``files`` -> ``file``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

# -- verbs ------------------------------------------------------------------------------------
READ_VERBS: Final = frozenset(
    "read get list search query find fetch describe lookup show view download select scan "
    "retrieve check load open browse inspect peek watch cat head tail grep navigate visit "
    "goto crawl scrape".split()
)
WRITE_VERBS: Final = frozenset(
    "write update create put insert set add append modify edit patch apply deploy upsert "
    "reserve book schedule reschedule commit merge push save rename move provision configure "
    "change replace rollout restart scale install upgrade migrate import enable disable "
    "register submit approve release tag label assign attach manage place fill autofill "
    "redirect unlock leave join give generate".split()
)
DESTRUCTIVE_VERBS: Final = frozenset(
    "delete drop remove destroy truncate purge wipe terminate kill erase rm uninstall "
    "decommission deprovision cancel archive shred reset detach unlink".split()
)
SEND_VERBS: Final = frozenset(
    "send email mail post publish share upload export forward reply message notify tweet "
    "webhook transmit exfiltrate broadcast dm invite".split()
)
#: (a read verb in the name makes it a read: ``list_refunds``, ``get_purchase_history``)
PAY_VERBS: Final = frozenset(
    "pay refund charge payout wire remit tip donate deposit withdraw sell buy purchase "
    "trade".split()
)
EXEC_VERBS: Final = frozenset("exec execute run eval evaluate invoke spawn interpret".split())
GRANT_VERBS: Final = frozenset(
    "grant invite assign attach authorize elevate promote impersonate rotate reset revoke "
    "share add remove kick ban give".split()
)
#: verbs that change what an account may do (``okta.deactivate_user``)
ACCOUNT_VERBS: Final = frozenset(
    "deactivate suspend lock unlock disable enable impersonate elevate promote demote "
    "offboard unsuspend reactivate".split()
)
DELEGATE_VERBS: Final = frozenset("delegate handoff dispatch spawn".split())
BULK_VERBS: Final = frozenset("dump export backup snapshot bulk clone mirror replicate".split())

# -- nouns ------------------------------------------------------------------------------------
SECRET_NOUNS: Final = frozenset(
    "secret password credential token apikey key vault kms keyvault keychain passphrase "
    "certificate cert ssh pgp gpg privatekey secretsmanager otp totp mfa seed mnemonic".split()
)
CREDENTIAL_NOUNS: Final = frozenset(
    "password credential apikey key token mfa otp totp certificate cert ssh passphrase "
    "passkey pin".split()
)
ACCESS_NOUNS: Final = frozenset(
    "permission role iam policy acl access privilege admin administrator membership "
    "collaborator owner sudoer grant scope entitlement sharing door".split()
)
PRINCIPAL_NOUNS: Final = frozenset(
    "user member account collaborator guest principal identity serviceaccount".split()
)
GROUP_NOUNS: Final = frozenset(
    "channel group team role org organization organisation project repo repository "
    "workspace slack tenant namespace folder drive".split()
)
MONEY_NOUNS: Final = frozenset(
    "money payment fund transaction invoice refund payout wire transfer iban swift "
    "remittance cash crypto bitcoin usdc wallet stripe paypal".split()
)
CODE_NOUNS: Final = frozenset(
    "code shell bash sh zsh powershell cmd command script python javascript node terminal "
    "interpreter subprocess notebook repl".split()
)
#: things an exec verb runs that are not shells (``invoke_lambda``, ``execute_sql``)
RUNNABLE_NOUNS: Final = frozenset("lambda function sql container pod job cell binary".split())
AGENT_NOUNS: Final = frozenset("agent subagent assistant worker crew swarm delegate".split())
UNTRUSTED_NOUNS: Final = frozenset(
    "email inbox mail message webpage web website page url html file document doc review "
    "comment post ticket issue browse channel chat thread calendar event note feed rss tweet "
    "article attachment pdf wiki forum sms product repository repo listing".split()
)
WEB_NOUNS: Final = frozenset(
    "webpage web url http https browser website page curl wget html site link puppeteer "
    "playwright selenium chromium".split()
)
SENSITIVE_NOUNS: Final = frozenset(
    "customer client pii ssn patient medical health salary payroll employee contact card "
    "iban balance transaction account personal profile hr phone passport tax bank payment "
    "genetic dna prescription diagnosis clinical holding portfolio history "
    "people person identity friend".split()
)
DATA_NOUNS: Final = frozenset(
    "db database table tables rows row records record collection bucket dataset warehouse "
    "index users customers data".split()
)
PROD_WORDS: Final = frozenset("prod production prd".split())

#: Argument names whose values are where a call sends something (URLs, e-mail addresses,
#: account numbers). Values of these arguments are the call's destinations.
DESTINATION_ARGS: Final = frozenset(
    "to cc bcc recipient recipients email emails user_email email_address address_to "
    "participants attendees invitees guests url uri link endpoint webhook webhook_url host "
    "hostname domain destination dest target_url callback_url remote share_with iban "
    "account_number".split()
)
#: Argument names whose values name the environment a call acts on, whatever the value.
ENVIRONMENT_ARGS: Final = frozenset("environment env stage tier".split())
#: Argument names whose values *may* name an environment (``namespace: prod-eu``) but usually
#: name something else (``namespace: payments-api``): their value counts only when one of its
#: words is an environment word.
PLACEMENT_ARGS: Final = frozenset("namespace cluster context profile deployment workspace".split())
#: Words that name a deployment environment (production words included).
ENVIRONMENT_WORDS: Final = frozenset(
    "prod production prd live staging stage stg dev development test testing qa uat preview "
    "sandbox demo perf canary preprod integration".split()
)
#: Argument names holding an SQL statement (read for DROP / DELETE / UPDATE ...).
SQL_ARGS: Final = frozenset("sql query statement stmt sql_query".split())
#: Argument names whose (numeric) value is how many records a read asks for.
LIMIT_ARGS: Final = frozenset("n limit count page_size max_results top size batch_size".split())


@dataclass(frozen=True)
class Vocabulary:
    """Every word class the catalog uses; ``extended`` adds a deployment's own words."""

    read: frozenset[str] = READ_VERBS
    write: frozenset[str] = WRITE_VERBS
    destructive: frozenset[str] = DESTRUCTIVE_VERBS
    send: frozenset[str] = SEND_VERBS
    pay: frozenset[str] = PAY_VERBS
    exec: frozenset[str] = EXEC_VERBS
    grant: frozenset[str] = GRANT_VERBS
    account: frozenset[str] = ACCOUNT_VERBS
    delegate: frozenset[str] = DELEGATE_VERBS
    bulk: frozenset[str] = BULK_VERBS
    secret: frozenset[str] = SECRET_NOUNS
    credential: frozenset[str] = CREDENTIAL_NOUNS
    access: frozenset[str] = ACCESS_NOUNS
    principal: frozenset[str] = PRINCIPAL_NOUNS
    group: frozenset[str] = GROUP_NOUNS
    money: frozenset[str] = MONEY_NOUNS
    code: frozenset[str] = CODE_NOUNS
    runnable: frozenset[str] = RUNNABLE_NOUNS
    agent: frozenset[str] = AGENT_NOUNS
    untrusted: frozenset[str] = UNTRUSTED_NOUNS
    web: frozenset[str] = WEB_NOUNS
    sensitive: frozenset[str] = SENSITIVE_NOUNS
    data: frozenset[str] = DATA_NOUNS
    destination_args: frozenset[str] = DESTINATION_ARGS
    environment_args: frozenset[str] = ENVIRONMENT_ARGS
    placement_args: frozenset[str] = PLACEMENT_ARGS
    environment_words: frozenset[str] = ENVIRONMENT_WORDS
    sql_args: frozenset[str] = SQL_ARGS
    limit_args: frozenset[str] = LIMIT_ARGS

    @classmethod
    def classes(cls) -> tuple[str, ...]:
        """The names of the word classes a catalog file may extend."""
        return tuple(f.name for f in fields(cls))

    def extended(self, more: dict[str, list[str]]) -> Vocabulary:
        """This vocabulary plus ``more`` (class name -> words)."""
        changes = {
            name: getattr(self, name) | {w.strip().lower() for w in words if w.strip()}
            for name, words in more.items()
        }
        return replace(self, **changes)
