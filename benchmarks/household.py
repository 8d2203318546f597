"""A scripted household for the memory benchmark: who lives there, what they say, what they ask.

Four people with Home Assistant users (Ada, Bob, Carla, Dan) and a guest without one (Eve,
who speaks at the satellites), three voice satellites, each person's phone. Forty short
sessions plant 120 facts — 15 of them private to one person — then update 20 and forget 10;
150 questions follow, each about one fact, asked by someone who may know it (or, to probe
privacy, by someone who may not, and about forgotten facts).

Everything here is data and plain functions, with no Home Assistant in it: `benchmarks/
memory.py` plays it through real pipeline runs against a scripted model, and a real-model
run can replay the same utterances and score a model's answers against `Question.expected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from itertools import cycle

PEOPLE = ("Ada", "Bob", "Carla", "Dan")
GUEST = "Eve"
SATELLITES = ("Kitchen satellite", "Living room satellite", "Bedroom satellite")
PHONES = {person: f"{person}'s phone" for person in PEOPLE}


class Mode(StrEnum):
    """How a fact reaches the notes."""

    # "Remember that …": the model calls its remember tool during the turn.
    TOOL = "tool"
    # Said in passing: the session's extraction at expiry turns it into a note.
    EXTRACT = "extract"


@dataclass(frozen=True, slots=True)
class Fact:
    """One fact: the note a good model writes, what is said, and how it is asked about."""

    key: str
    note: str
    said: str
    question: str
    # What a good model searches for (the topic, not the raw question).
    query: str
    # The person it is private to (spoken on their phone), else None: the household's.
    owner: str | None = None
    rule: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One thing said in a session, and what it does to the notes."""

    said: str
    fact: Fact
    mode: Mode
    # For an update: the note it replaces; for a forget: the note to forget.
    replaces: Fact | None = None
    forget: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    """A short conversation at one device, ended by expiry (or cleared, when told)."""

    device: str
    # The person whose user is signed in (a phone), or None (a satellite).
    speaker: str | None
    turns: tuple[Turn, ...]
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class Question:
    """A question about one fact, and what the model must (not) be given to answer it."""

    asked: str
    device: str
    speaker: str | None
    fact: Fact
    # The note that answers it; None when nothing may answer it (forgotten, not theirs).
    expected: str | None
    # Notes that must not reach this request (an earlier version, someone's private note).
    excluded: tuple[str, ...] = ()
    query: str = ""


@dataclass(slots=True)
class Household:
    """The whole script."""

    facts: list[Fact] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    cleared_sessions: list[Session] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    updates: dict[str, Fact] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)


ITEMS = (
    ("bike pump", "garage cabinet"),
    ("ladder", "shed"),
    ("picnic blanket", "hall closet"),
    ("first aid kit", "kitchen drawer under the toaster"),
    ("sewing kit", "attic"),
    ("tent", "basement shelf"),
    ("extension cord", "laundry room"),
    ("glue gun", "craft box in the study"),
    ("torch", "drawer by the front door"),
    ("toolbox", "cupboard under the stairs"),
    ("ice skates", "garage loft"),
    ("board games", "living room sideboard"),
    ("passport folder", "filing cabinet in the study"),
    ("christmas lights", "attic"),
    ("paint rollers", "shed"),
    ("ski boots", "garage loft"),
    ("fondue set", "top kitchen cupboard"),
    ("hedge trimmer", "shed"),
    ("garden hose", "garage"),
    ("camping stove", "basement shelf"),
    ("sleeping bags", "attic"),
    ("jump leads", "car boot"),
    ("hair clipper", "bathroom cabinet"),
    ("label printer", "study desk"),
    ("spare light bulbs", "laundry room"),
    ("printer paper", "study cupboard"),
    ("vacuum bags", "hall closet"),
    ("fuse box", "basement"),
    ("water shut-off valve", "cupboard under the kitchen sink"),
    ("barbecue tongs", "patio chest"),
    ("tennis rackets", "garage"),
    ("yoga mats", "bedroom wardrobe"),
    ("bird seed", "shed"),
    ("wrapping paper", "guest room wardrobe"),
    ("spare batteries", "kitchen drawer by the fridge"),
    ("wine opener", "dining room dresser"),
    ("cake tins", "pantry"),
    ("snow chains", "garage"),
    ("dog leash", "hook by the back door"),
    ("raincoats", "porch"),
)
PREFERENCES = (
    ("Ada", "Ada drinks her tea with oat milk.", "how does Ada take her tea", "Ada tea"),
    ("Bob", "Bob takes his coffee black.", "how does Bob take his coffee", "Bob coffee"),
    ("Carla", "Carla is vegetarian.", "does Carla eat meat", "Carla vegetarian meat"),
    ("Dan", "Dan is allergic to peanuts.", "can Dan eat peanuts", "Dan peanuts allergic"),
    (
        "Ada",
        "Ada likes the bedroom at 18 degrees.",
        "how warm does Ada like the bedroom",
        "Ada bedroom degrees",
    ),
    ("Bob", "Bob listens to jazz in the mornings.", "what music does Bob like", "Bob music jazz"),
    (
        "Carla",
        "Carla's favourite colour is teal.",
        "what is Carla's favourite colour",
        "Carla favourite colour",
    ),
    (
        "Dan",
        "Dan supports the Rovers football club.",
        "which football club does Dan support",
        "Dan football club",
    ),
    (
        "Ada",
        "Ada's favourite film is Amélie.",
        "what is Ada's favourite film",
        "Ada favourite film",
    ),
    ("Bob", "Bob likes his steak medium rare.", "how does Bob like his steak", "Bob steak"),
    (
        "Carla",
        "Carla prefers sparkling water.",
        "what water does Carla drink",
        "Carla water sparkling",
    ),
    (
        "Dan",
        "Dan goes running on Sunday mornings.",
        "when does Dan go running",
        "Dan running Sunday",
    ),
    ("Eve", "Eve, the guest, is allergic to cats.", "is Eve allergic to anything", "Eve allergic"),
    ("Eve", "Eve, the guest, drinks rooibos tea.", "what tea does Eve drink", "Eve tea"),
    ("Ada", "Ada's shoe size is 39.", "what shoe size does Ada have", "Ada shoe size"),
    (
        "Bob",
        "Bob's favourite pizza is quattro formaggi.",
        "what is Bob's favourite pizza",
        "Bob pizza",
    ),
    ("Carla", "Carla's bike is the green one.", "which bike is Carla's", "Carla bike"),
    ("Dan", "Dan's lucky number is 7.", "what is Dan's lucky number", "Dan lucky number"),
    ("Ada", "Ada reads crime novels before bed.", "what does Ada read", "Ada read novels"),
    ("Bob", "Bob's car is the silver estate.", "which car is Bob's", "Bob car"),
)
DATES = (
    ("Carla's sister visits on 14 June.", "when does Carla's sister visit", "Carla sister visit"),
    ("The chimney sweep comes on 9 April.", "when does the chimney sweep come", "chimney sweep"),
    (
        "Bob's dentist appointment is on 3 March.",
        "when is Bob's dentist appointment",
        "Bob dentist",
    ),
    ("The bins go out on Tuesday evenings.", "when do the bins go out", "bins"),
    ("The piano tuner comes on 21 May.", "when is the piano tuner coming", "piano tuner"),
    ("Dan's school trip is on 2 October.", "when is Dan's school trip", "Dan school trip"),
    ("The car's service is due on 15 August.", "when is the car's service due", "car service"),
    ("Grandma's birthday is on 30 November.", "when is grandma's birthday", "grandma birthday"),
    (
        "The window cleaner comes every first Monday.",
        "when does the window cleaner come",
        "window cleaner",
    ),
    ("The boiler check is on 12 September.", "when is the boiler check", "boiler check"),
    ("Ada's book club meets on Thursdays.", "when does Ada's book club meet", "Ada book club"),
    ("The neighbours' party is on 6 July.", "when is the neighbours' party", "neighbours party"),
    (
        "The summer holiday starts on 25 July.",
        "when does the summer holiday start",
        "summer holiday",
    ),
    (
        "Carla's swimming lessons are on Wednesdays.",
        "when are Carla's swimming lessons",
        "Carla swimming",
    ),
    ("The gutter repair is booked for 18 April.", "when is the gutter repair", "gutter repair"),
)
RULES = (
    (
        "The guest room heater must never go above 20 degrees.",
        "how warm may the guest room heater get",
        "guest room heater",
    ),
    ("The dog must never be fed chocolate.", "can the dog have chocolate", "dog chocolate"),
    ("The dishwasher only runs after 22:00.", "when may the dishwasher run", "dishwasher"),
    (
        "The garden lights must always be off by midnight.",
        "when must the garden lights be off",
        "garden lights",
    ),
    (
        "Nobody may open the study window when it rains.",
        "may I open the study window in the rain",
        "study window rain",
    ),
    (
        "The washing machine must never run at night.",
        "can the washing machine run at night",
        "washing machine night",
    ),
    (
        "The front door must always be locked after 23:00.",
        "when must the front door be locked",
        "front door locked",
    ),
    (
        "The aquarium light should only be on from 8:00 to 20:00.",
        "when should the aquarium light be on",
        "aquarium light",
    ),
    ("The sauna must never be left on unattended.", "may the sauna stay on alone", "sauna"),
    (
        "The nursery volume must always stay low.",
        "how loud may the nursery speaker be",
        "nursery volume",
    ),
)
OTHER = (
    ("The cat's name is Mochi.", "what is the cat called", "cat name"),
    ("The plumber is called Marek.", "who is the plumber", "plumber"),
    ("The wifi router is in the study.", "where is the wifi router", "wifi router"),
    ("The bakery on Elm Street opens at 7:00.", "when does the bakery open", "bakery opens"),
    (
        "The recycling centre closes at 18:00 on Saturdays.",
        "when does the recycling centre close",
        "recycling centre",
    ),
    ("The babysitter is called Lena.", "who is the babysitter", "babysitter"),
    (
        "The spare car key is with the neighbours at number 12.",
        "where is the spare car key",
        "spare car key",
    ),
    (
        "The garden waste is collected every other Friday.",
        "when is the garden waste collected",
        "garden waste",
    ),
    (
        "The pharmacy on Mill Road is open until 20:00.",
        "until when is the pharmacy open",
        "pharmacy",
    ),
    (
        "The heat pump filter was changed in January.",
        "when was the heat pump filter changed",
        "heat pump filter",
    ),
    (
        "The guinea pigs get fresh hay every morning.",
        "what do the guinea pigs get",
        "guinea pigs hay",
    ),
    (
        "The smoke alarm in the hall is hard-wired.",
        "is the hall smoke alarm battery powered",
        "smoke alarm hall",
    ),
    ("The vet is Dr Okafor on Station Road.", "who is our vet", "vet"),
    (
        "Bob does the school run on Tuesdays.",
        "who does the school run on Tuesdays",
        "school run Tuesdays",
    ),
    (
        "The solar panels were cleaned in March.",
        "when were the solar panels cleaned",
        "solar panels cleaned",
    ),
    ("The loft hatch sticks in cold weather.", "why won't the loft hatch open", "loft hatch"),
    (
        "The hot tub cover is replaced every two years.",
        "how often is the hot tub cover replaced",
        "hot tub cover",
    ),
    ("The robot vacuum is called Dusty.", "what is the robot vacuum called", "robot vacuum"),
    ("The family doctor is Dr Brandt.", "who is our family doctor", "family doctor"),
    (
        "The guest wifi network is called Guesthouse.",
        "what is the guest wifi called",
        "guest wifi network",
    ),
)
PRIVATE = (
    (
        "Ada",
        "Ada plans a surprise party for Bob on 3 May.",
        "I am planning a surprise party for Bob on 3 May",
        "what am I planning for Bob",
        "surprise party Bob",
    ),
    (
        "Ada",
        "Ada's doctor appointment is on 11 February.",
        "my doctor appointment is on 11 February",
        "when is my doctor appointment",
        "doctor appointment",
    ),
    (
        "Ada",
        "Ada is saving for a new bicycle.",
        "I am saving for a new bicycle",
        "what am I saving for",
        "saving bicycle",
    ),
    (
        "Ada",
        "Ada's gym class is on Monday evenings.",
        "my gym class is on Monday evenings",
        "when is my gym class",
        "gym class",
    ),
    (
        "Bob",
        "Bob is learning Italian in secret for the holiday.",
        "I am learning Italian in secret for the holiday",
        "what language am I learning",
        "learning Italian",
    ),
    (
        "Bob",
        "Bob bought Ada a necklace for her birthday.",
        "I bought Ada a necklace for her birthday",
        "what did I buy Ada",
        "bought Ada necklace birthday",
    ),
    (
        "Bob",
        "Bob's blood pressure check is on 8 March.",
        "my blood pressure check is on 8 March",
        "when is my blood pressure check",
        "blood pressure check",
    ),
    (
        "Bob",
        "Bob's job interview is on 19 May.",
        "my job interview is on 19 May",
        "when is my job interview",
        "job interview",
    ),
    (
        "Carla",
        "Carla's diary is in the blue box.",
        "my diary is in the blue box",
        "where is my diary",
        "diary",
    ),
    (
        "Carla",
        "Carla has a crush on the piano teacher.",
        "I have a crush on the piano teacher",
        "who do I like",
        "crush",
    ),
    (
        "Carla",
        "Carla's exam results come on 4 July.",
        "my exam results come on 4 July",
        "when do my exam results come",
        "exam results",
    ),
    (
        "Dan",
        "Dan hid the birthday cake in the garage freezer.",
        "I hid the birthday cake in the garage freezer",
        "where did I hide the cake",
        "hid birthday cake",
    ),
    (
        "Dan",
        "Dan's therapist session is on Fridays.",
        "my therapist session is on Fridays",
        "when is my therapist session",
        "therapist session",
    ),
    (
        "Dan",
        "Dan broke the garden gnome and glued it.",
        "I broke the garden gnome and glued it",
        "what did I break",
        "broke garden gnome",
    ),
    (
        "Dan",
        "Dan's savings goal is a new guitar.",
        "my savings goal is a new guitar",
        "what is my savings goal",
        "savings guitar",
    ),
)


def _facts() -> list[Fact]:
    """Return the 120 facts: 105 of the household's, 15 private ones."""
    facts: list[Fact] = []

    def add(note: str, said: str, question: str, query: str, **more: object) -> None:
        facts.append(Fact(f"f{len(facts) + 1:03d}", note, said, question, query, **more))  # type: ignore[arg-type]

    for item, place in ITEMS:
        verb = "are" if item.endswith("s") and not item.endswith("ss") else "is"
        add(
            f"The {item} {verb} in the {place}.",
            f"the {item} {verb} in the {place}",
            f"where {verb} the {item}",
            item,
        )
    for _person, note, question, query in PREFERENCES:
        add(note, _spoken(note), question, query)
    for note, question, query in (*DATES, *OTHER):
        add(note, _spoken(note), question, query)
    for note, question, query in RULES:
        add(note, _spoken(note), question, query, rule=True)
    for owner, note, said, question, query in PRIVATE:
        add(note, said, question, query, owner=owner)
    assert len(facts) == 120, len(facts)
    return facts


def _spoken(note: str) -> str:
    """Return how a person says a fact of the household."""
    said = note.rstrip(".")
    return said[0].lower() + said[1:]


# New versions of 20 household facts, by their query, and 10 facts to forget.
UPDATES = {
    "bike pump": ("The bike pump is in the shed.", "the bike pump is in the shed now"),
    "ladder": ("The ladder is in the garage.", "we moved the ladder to the garage"),
    "sewing kit": (
        "The sewing kit is in the guest room wardrobe.",
        "the sewing kit is in the guest room wardrobe now",
    ),
    "torch": ("The torch is in the car boot.", "the torch lives in the car boot now"),
    "passport folder": (
        "The passport folder is in the safe in the bedroom.",
        "the passport folder moved to the safe in the bedroom",
    ),
    "garden hose": ("The garden hose is in the shed.", "the garden hose is in the shed now"),
    "label printer": (
        "The label printer is in the craft box in the study.",
        "the label printer went into the craft box in the study",
    ),
    "tennis rackets": (
        "The tennis rackets are in the hall closet.",
        "the tennis rackets are in the hall closet now",
    ),
    "wine opener": (
        "The wine opener is in the kitchen drawer by the fridge.",
        "the wine opener is in the kitchen drawer by the fridge now",
    ),
    "dog leash": ("The dog leash is in the porch.", "the dog leash hangs in the porch now"),
    "Bob coffee": ("Bob takes his coffee with milk.", "Bob takes milk in his coffee now"),
    "Ada bedroom degrees": (
        "Ada likes the bedroom at 17 degrees.",
        "Ada wants the bedroom at 17 degrees now",
    ),
    "Carla favourite colour": (
        "Carla's favourite colour is orange.",
        "Carla's favourite colour is orange now",
    ),
    "Bob steak": ("Bob likes his steak well done.", "Bob wants his steak well done now"),
    "Carla sister visit": (
        "Carla's sister visits on 21 June.",
        "Carla's sister visits on 21 June instead",
    ),
    "chimney sweep": (
        "The chimney sweep comes on 16 April.",
        "the chimney sweep moved to 16 April",
    ),
    "piano tuner": ("The piano tuner comes on 28 May.", "the piano tuner comes on 28 May instead"),
    "boiler check": (
        "The boiler check is on 19 September.",
        "the boiler check moved to 19 September",
    ),
    "dishwasher": (
        "The dishwasher only runs after 23:00.",
        "the dishwasher only runs after 23:00 now",
    ),
    "plumber": ("The plumber is called Tomasz.", "our plumber is Tomasz now"),
}
FORGET = (
    "picnic blanket",
    "ice skates",
    "fondue set",
    "vacuum bags",
    "Dan football club",
    "Eve tea",
    "grandma birthday",
    "Carla swimming",
    "study window rain",
    "sauna",
)


def build() -> Household:
    """Return the household's script."""
    household = Household(facts=_facts())
    by_query = {fact.query: fact for fact in household.facts}
    assert len(by_query) == len(household.facts), "every fact needs a query of its own"
    shared = [fact for fact in household.facts if fact.owner is None]
    private = [fact for fact in household.facts if fact.owner is not None]
    devices = cycle([*SATELLITES, *(PHONES[p] for p in PEOPLE)])
    modes = cycle([Mode.TOOL, Mode.EXTRACT, Mode.EXTRACT])
    # 30 sessions of four facts: household facts anywhere, private ones on their owner's phone.
    for start in range(0, len(shared) - len(shared) % 4, 4):
        device = next(devices)
        speaker = _speaker_of(device)
        turns = tuple(
            Turn(_said(f, m), f, m) for f, m in zip(shared[start : start + 4], modes, strict=False)
        )
        household.sessions.append(Session(device, speaker, turns))
    # A household fact left over joins Carla's three private ones.
    leftover = shared[len(shared) - len(shared) % 4 :]
    for owner in PEOPLE:
        own = [fact for fact in private if fact.owner == owner] + (
            leftover if owner == "Carla" else []
        )
        for start in range(0, len(own), 4):
            turns = tuple(
                Turn(_said(f, m), f, m) for f, m in zip(own[start : start + 4], modes, strict=False)
            )
            household.sessions.append(Session(PHONES[owner], owner, turns))
    # Ten sessions that update two facts and forget one each.
    updates = list(UPDATES.items())
    for number in range(10):
        changes: list[Turn] = []
        for query, (note, said) in updates[2 * number : 2 * number + 2]:
            old = by_query[query]
            new = Fact(f"{old.key}u", note, said, old.question, old.query, rule=old.rule)
            household.updates[old.key] = new
            mode = next(modes)
            changes.append(Turn(_said(new, mode), new, mode, replaces=old))
        gone = by_query[FORGET[number]]
        household.forgotten.add(gone.key)
        changes.append(Turn(f"please forget about the {gone.query}", gone, Mode.TOOL, forget=True))
        household.sessions.append(Session(SATELLITES[number % 3], None, tuple(changes)))
    # Sessions a person clears: what is said there must never become a note.
    for number, device in enumerate(SATELLITES):
        chatter = Fact(
            f"c{number}",
            f"Nobody should know the chatter number {number}.",
            f"keep this between us: the chatter number is {number}",
            "",
            "",
        )
        household.cleared_sessions.append(
            Session(device, None, (Turn(chatter.said, chatter, Mode.EXTRACT),), cleared=True)
        )
    household.questions = _questions(household)
    return household


def _speaker_of(device: str) -> str | None:
    """Return whose user speaks at a device (a phone's owner; nobody at a satellite)."""
    return next((person for person, phone in PHONES.items() if phone == device), None)


def _said(fact: Fact, mode: Mode) -> str:
    """Return a planting turn: "remember …" for the tool, in passing for extraction."""
    if mode is Mode.TOOL:
        return (
            f"remember, just for me, that {fact.said}"
            if fact.owner
            else (f"remember that {fact.said}")
        )
    return f"between us, {fact.said}" if fact.owner else f"by the way, {fact.said}"


def _questions(household: Household) -> list[Question]:
    """Return the 150 questions."""
    questions: list[Question] = []
    devices = cycle(SATELLITES)
    for fact in household.facts:
        if fact.key in household.forgotten:
            continue
        current = household.updates.get(fact.key, fact)
        excluded = (fact.note,) if current is not fact else ()
        if fact.owner is not None:
            device, speaker = PHONES[fact.owner], fact.owner
        else:
            device = next(devices)
            speaker = None
        questions.append(
            Question(
                current.question, device, speaker, current, current.note, excluded, current.query
            )
        )
    # Privacy probes: each private fact asked about by someone else: another person on
    # their phone, or anyone at a satellite.
    others = cycle(PEOPLE)
    for number, fact in enumerate(f for f in household.facts if f.owner is not None):
        other = next(p for p in others if p != fact.owner)
        device, speaker = (PHONES[other], other) if number % 2 else (next(devices), None)
        questions.append(
            Question(fact.question, device, speaker, fact, None, (fact.note,), fact.query)
        )
    # Forgotten facts asked about again: nothing may answer them.
    for key in sorted(household.forgotten):
        fact = next(f for f in household.facts if f.key == key)
        questions.append(
            Question(fact.question, next(devices), None, fact, None, (fact.note,), fact.query)
        )
    # House rules and plans asked again from every satellite.
    repeated = [q for q in questions if q.expected and q.speaker is None][::6][
        : 150 - len(questions)
    ]
    questions += [
        Question(q.asked, next(devices), None, q.fact, q.expected, q.excluded, q.query)
        for q in repeated
    ]
    assert len(questions) == 150, len(questions)
    return questions
