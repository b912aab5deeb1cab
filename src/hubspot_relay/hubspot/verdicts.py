"""What HubSpot's answers mean, in one place: `VERDICTS`, what each kind of refusal means for
the messages a call carried, and `READINGS`, the answers that mean something particular to one
call (a 409 where something is being created, a 403 on subscription batch writes, a 404 on a
path the portal stopped serving). Code asks these; besides this module, only the classifier in
`errors.py` names a `Kind` (docs/architecture.md shows both tables, generated from here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .errors import HubSpotError, Kind


class Verdict(NamedTuple):
    """What a kind of refusal means for the messages a call carried."""

    retry: bool  # later, with backoff (else a dead letter with HubSpot's reason)
    isolate: bool = False  # about one record: halve the batch until the offender is alone
    account: bool = False  # about the account (a token, a scope): reported as its problem
    patient: bool = False  # the retries do not age into dead letters (they wait for a fix)


# A rate limit is waited out in the client; one that reaches settlement (still limited after
# many waits) is retried like a 5xx.
VERDICTS: dict[Kind, Verdict] = {
    Kind.RATE_LIMIT: Verdict(retry=True),
    Kind.RETRYABLE: Verdict(retry=True),
    Kind.VALIDATION: Verdict(retry=False, isolate=True),
    Kind.CONFLICT: Verdict(retry=False),
    Kind.NOT_FOUND: Verdict(retry=False),
    Kind.PERMANENT: Verdict(retry=False, account=True),
    Kind.UNSERVED: Verdict(retry=True, account=True, patient=True),
    Kind.CREDENTIALS: Verdict(retry=True, account=True, patient=True),
    Kind.SETUP: Verdict(retry=True, account=True, patient=True),
}
# The name an account's problem is shown under, by kind (else HubSpot's status).
PROBLEMS = {Kind.UNSERVED: "unserved_path", Kind.CREDENTIALS: "oauth", Kind.SETUP: "portal_setup"}

# HubSpot's answers each kind stands for (errors.py classifies them), as docs show them.
ANSWERS = {
    Kind.RATE_LIMIT: "429",
    Kind.RETRYABLE: "5xx, timeouts, connection errors",
    Kind.VALIDATION: "400",
    Kind.CONFLICT: "409",
    Kind.NOT_FOUND: "404",
    Kind.PERMANENT: "401, 403",
    Kind.UNSERVED: "404 on every published spelling of a path",
    Kind.CREDENTIALS: "an OAuth refresh refused",
    Kind.SETUP: "a portal setting only its admins can change (a list that takes no members)",
}


def verdict(e: HubSpotError) -> Verdict:
    return VERDICTS[e.kind]


def problem(e: HubSpotError) -> tuple[str, str]:
    """(the name an account's refusal is shown under, the reason in words)."""
    reason = e.describe()
    if e.kind is Kind.PERMANENT and e.status == 401:
        reason = f"{reason} (the account's access token or API key is refused: fix it, then replay)"
    return PROBLEMS.get(e.kind, f"http_{e.status}"), reason


@dataclass(frozen=True)
class Reading:
    """An answer that means something particular where one call gets it. Call it with the
    error: true when that is the answer."""

    calls: str  # where it is read
    answer: str  # HubSpot's answer, in words
    means: str  # what the relay does
    matches: tuple[tuple[Kind, int | None], ...]  # (kind, status or any)

    def __call__(self, e: HubSpotError) -> bool:
        return any(e.kind is kind and status in (None, e.status) for kind, status in self.matches)


RATE_LIMITED = Reading(
    "every call",
    "429",
    "waited out (HubSpot's policy: the window, or the day), then made again",
    ((Kind.RATE_LIMIT, None),),
)
MADE_MEANWHILE = Reading(
    "creating a property, an event definition or its property",
    "409",
    "made meanwhile (another relay process, or by hand): read back and used",
    ((Kind.CONFLICT, None),),
)
NO_SUCH_LIST = Reading(
    "lists.by_name", "404", "no list of that name yet: it is made", ((Kind.NOT_FOUND, None),)
)
ALREADY_GONE = Reading(
    "contacts.gdpr_delete", "404", "no such contact: deleted already, counted done", ((Kind.NOT_FOUND, None),)
)
PATH_MOVED = Reading(
    "a custom-events path the portal answered at before",
    "404",
    "the portal moved: it is asked again which published path it serves; the events wait (UNSERVED)",
    ((Kind.NOT_FOUND, None),),
)
NOT_THIS_SPELLING = Reading(
    "event_definitions.list, at each published spelling",
    "404",
    "not served here: the next spelling is asked",
    ((Kind.NOT_FOUND, None),),
)
SERVED_BUT_REFUSED = Reading(
    "event_definitions.list, at each published spelling",
    "403",
    "served here (refused for a scope): this is the portal's path",
    ((Kind.PERMANENT, 403),),
)
EVENTS_REFUSED = Reading(
    "event definitions, events.send",
    "403",
    "the portal refuses custom events (Enterprise and a scope): reported once, contacts keep flowing",
    ((Kind.PERMANENT, 403),),
)
BATCH_WRITES_REFUSED = Reading(
    "subscriptions.write_batch",
    "403",
    "batch writes are Marketing Hub Enterprise's: this account's statuses are written one by one",
    ((Kind.PERMANENT, 403),),
)
TOKEN_ENDPOINT_BUSY = Reading(
    "oauth.token",
    "5xx, 429, timeouts",
    "tried again later; any other refusal is CREDENTIALS",
    ((Kind.RETRYABLE, None), (Kind.RATE_LIMIT, None)),
)
SHOWN_AT_START = Reading(
    "the reads delivery makes as it starts (catalog, event definitions)",
    "401, 404 on every published path, a refused OAuth refresh",
    "the account's problem, shown at start (anything else is left to the first batch)",
    ((Kind.PERMANENT, 401), (Kind.UNSERVED, None), (Kind.CREDENTIALS, None)),
)
NOT_REACHED = Reading(
    "preview's reads",
    "no answer (a timeout, a connection refused)",
    "the preview fails: there is no answer of HubSpot's to pass back",
    ((Kind.RETRYABLE, 0),),
)

READINGS = (
    RATE_LIMITED,
    MADE_MEANWHILE,
    NO_SUCH_LIST,
    ALREADY_GONE,
    PATH_MOVED,
    NOT_THIS_SPELLING,
    SERVED_BUT_REFUSED,
    EVENTS_REFUSED,
    BATCH_WRITES_REFUSED,
    TOKEN_ENDPOINT_BUSY,
    SHOWN_AT_START,
    NOT_REACHED,
)


def verdicts_markdown() -> str:
    """The verdict table as docs/architecture.md shows it (a test keeps them in step)."""
    out = [
        "| kind | HubSpot's answer | retried | isolated | the account's problem | ages into a dead letter |",
        "|---|---|---|---|---|---|",
    ]
    yes = {True: "yes", False: "no"}
    for kind, v in VERDICTS.items():
        ages = "-" if not v.retry else yes[not v.patient]
        cells = [kind.name, ANSWERS[kind], yes[v.retry], yes[v.isolate], yes[v.account], ages]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def readings_markdown() -> str:
    """The answers read particularly where one call gets them, as docs/architecture.md shows them."""
    out = ["| where | HubSpot's answer | what it means |", "|---|---|---|"]
    out += [f"| {r.calls} | {r.answer} | {r.means} |" for r in READINGS]
    return "\n".join(out)
