"""A built-in corpus: little stories from a small, seeded grammar (no download, no files).

A language model needs text with structure it can learn; on a laptop CPU, in two
minutes, it needs text whose structure is *small*. This generator writes stories
in the spirit of TinyStories (Eldan & Li 2023) from a hand-written grammar:

    story     = opening  arc  ending
    opening   = "Once upon a time, there was a {kind} named {Name}." + where they live
    arc       = one of: lost_and_found | new_friend | brave | sharing | journey | making
    sentence  = a template with slots: {hero}, {he}, {his}, {friend}, {thing}, {place}, ...

Characters (a name, a kind, a pronoun), places and objects are drawn from short
lists; every arc is a fixed sequence of steps, each with a few interchangeable
templates and a line or two of dialogue. The text uses only ASCII letters, a
little punctuation, spaces and newlines (54 distinct characters), so a
character-level model sees the same words again and again and soon writes
recognisable stories of its own.

Two knobs make the corpus harder or easier to learn, without changing the
default corpus by a byte:

    vocabulary   the fraction of every word list used (names, kinds, places, things, colours, ...):
                 generate_stories(n, vocabulary=0.3) draws from the first 30% of each list (at least
                 one entry, two names), so fewer distinct words
    arcs         story arcs per story: arcs=3 chains three arcs ("The next day, ...") between one
                 opening and one ending, so longer stories with longer-range structure

Everything comes from ``random.Random(seed)``: the same seed gives the same text,
byte for byte, on every machine and Python version (``Random.random`` and
``Random.choice`` are stable across versions). Stories are separated by a blank line.

Example (``generate_stories(1, seed=0)``, printed; the real output, checked by a test)::

    Once upon a time, there was a happy frog named Coco. She lived in a cozy house with a red door.
    Coco had a shiny hat. It was her favorite toy. One day, Rex came to play at the forest. "Can I play with your shiny hat?" asked Rex.
    Coco held the shiny hat tight and said, "No!" Rex began to cry. Coco saw that Rex was sad, and she felt bad. "I'm sorry," said Coco. "We can play with it together."
    They took turns with the shiny hat and had lots of fun. Coco learned that sharing makes everyone happy. From that day on, Coco and Rex were best friends.
"""  # noqa: E501

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

# ----------------------------------------------------------------------------- the word lists

NAMES_GIRL = ("Lily", "Mia", "Anna", "Sue", "Rosa", "Zoe", "Emma", "Kim", "Lucy", "Nell")
NAMES_BOY = ("Tom", "Ben", "Max", "Sam", "Leo", "Finn", "Jack", "Tim", "Oscar", "Noah")
NAMES_PET_SHE = ("Bella", "Daisy", "Coco", "Ruby", "Molly")
NAMES_PET_HE = ("Pip", "Spot", "Rex", "Buddy", "Milo")

# (kind, pronoun set) -- children have fixed pronouns, animals get one at random
KINDS_CHILD = (("little girl", "she"), ("little boy", "he"))
KINDS_ANIMAL = ("small rabbit", "brown dog", "curious cat", "young fox", "tiny bird",
                "old turtle", "happy frog", "brave mouse", "big bear", "little duck")

PRONOUNS = {
    "she": {"he": "she", "him": "her", "his": "her", "He": "She", "His": "Her"},
    "he": {"he": "he", "him": "him", "his": "his", "He": "He", "His": "His"},
}

HOMES = ("in a small house near the forest", "in a little village by the sea",
         "on a big farm", "near a quiet river", "in a cozy house with a red door",
         "at the edge of a green meadow", "in a busy town")
PLACES = ("the park", "the forest", "the garden", "the beach", "the big hill",
          "the river", "the meadow", "the old barn", "the market", "the pond")
HIDING = ("under a big leaf", "behind a tree", "next to a rock", "under the bed",
          "in the tall grass", "near the flowers", "inside an old boot")

COLOURS = ("red", "blue", "green", "yellow", "shiny", "little", "soft", "old")
THINGS = ("ball", "kite", "hat", "box", "key", "boat", "book", "drum", "cup", "shell", "scarf")
GAMES = ("tag", "hide and seek", "catch", "a game with a stick")
FEARS = (("the dark", "it was only the night, full of stars"),
         ("the big dog next door", "the dog only wanted to play"),
         ("the loud thunder", "the thunder was only noise, and the rain was warm"),
         ("the deep water", "the water was cool and fun"),
         ("the tall slide", "the slide was fast and fun"))
GOALS = ("see the sea", "find the rainbow", "climb the big hill", "visit grandma",
         "see where the river goes")
MAKES = (("bake a cake", "the cake", "they forgot the sugar", "they added the sugar and tried again"),
         ("build a sandcastle", "the sandcastle", "a wave knocked it down", "they built it again, far from the water"),
         ("paint a picture", "the picture", "the paint spilled", "they painted a sun over the spill"),
         ("make a boat from a box", "the boat", "it began to sink", "they fixed the hole with tape"))
FEELINGS_END = ("happy", "proud", "glad", "very happy")


@dataclass(frozen=True)
class Lexicon:
    """The word lists a story draws from; Lexicon() holds them all."""

    names_girl: tuple = NAMES_GIRL
    names_boy: tuple = NAMES_BOY
    names_pet_she: tuple = NAMES_PET_SHE
    names_pet_he: tuple = NAMES_PET_HE
    kinds_animal: tuple = KINDS_ANIMAL
    homes: tuple = HOMES
    places: tuple = PLACES
    hiding: tuple = HIDING
    colours: tuple = COLOURS
    things: tuple = THINGS
    games: tuple = GAMES
    fears: tuple = FEARS
    goals: tuple = GOALS
    makes: tuple = MAKES
    feelings_end: tuple = FEELINGS_END

    def shrink(self, fraction: float) -> "Lexicon":
        """The first ceil(fraction x n) entries of each list (at least one; two of each list of names)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"vocabulary must be a fraction in (0, 1], got {fraction}")
        out = {}
        for f in fields(self):
            words = getattr(self, f.name)
            least = 2 if f.name.startswith("names") else 1
            out[f.name] = words[:max(least, math.ceil(fraction * len(words)))]
        return Lexicon(**out)


FULL = Lexicon()


@dataclass(frozen=True)
class Character:
    name: str
    kind: str
    pronoun: str  # "she" or "he"


def _character(rng: random.Random, lex: Lexicon = FULL, avoid: str = "") -> Character:
    if rng.random() < 0.5:
        kind, pronoun = rng.choice(KINDS_CHILD)
        names = lex.names_girl if pronoun == "she" else lex.names_boy
    else:
        kind, pronoun = rng.choice(lex.kinds_animal), rng.choice(("she", "he"))
        names = lex.names_pet_she if pronoun == "she" else lex.names_pet_he
    name = rng.choice([n for n in names if n != avoid])
    return Character(name, kind, pronoun)


def _thing(rng: random.Random, lex: Lexicon = FULL) -> str:
    return f"{rng.choice(lex.colours)} {rng.choice(lex.things)}"


def _a(word: str) -> str:
    """The indefinite article: a(n) -- _a("old box") -> "an old box"."""
    return ("an " if word[0] in "aeiou" else "a ") + word


# ----------------------------------------------------------------------------- the story arcs
# Each arc returns a list of sentence templates; _fill() substitutes the slots.
# {he}/{him}/{his} refer to the hero, {fhe}/{fhis} to the friend.


def _lost_and_found(rng: random.Random) -> list[str]:
    return [
        rng.choice(("{Hero} had {a_thing}. {He} loved it very much.",
                    "{Hero} had {a_thing} that {he} took everywhere.")),
        rng.choice(("One day, {hero} went to {place} to play.",
                    "One sunny morning, {hero} took {his} {thing} to {place}.")),
        rng.choice(("When it was time to go home, the {thing} was gone!",
                    "After a while, {hero} looked down and the {thing} was not there.")),
        "{Hero} was sad. {He} looked everywhere, but {he} could not find it.",
        "Then {hero} saw {friend}, {a_fkind}.",
        '"Have you seen my {thing}?" asked {hero}.',
        rng.choice(('"No, but I will help you look," said {friend}.',
                    '"I haven\'t seen it, but we can look together," said {friend}.')),
        "They looked and looked. At last, {friend} found the {thing} {hiding}.",
        '"Thank you!" said {hero}. "You are a good friend."',
    ]


def _new_friend(rng: random.Random) -> list[str]:
    return [
        rng.choice(("{Hero} did not have any friends, and {he} felt lonely.",
                    "{Hero} wanted a friend to play with.")),
        "One day, {hero} went to {place}. There {he} met {friend}, {a_fkind}.",
        '"Hello," said {hero}. "Do you want to play with me?"',
        rng.choice(('"Yes, I would like that," said {friend}.',
                    '{Friend} smiled and said, "Yes, let\'s play!"')),
        "They played {game} all day long. They laughed and ran until the sun went down.",
        '"Can we play again tomorrow?" asked {friend}.',
        '"Yes!" said {hero}. "Now we are friends."',
    ]


def _brave(rng: random.Random, fear: tuple[str, str]) -> list[str]:
    return [
        "{Hero} was scared of " + fear[0] + ".",
        rng.choice(('"I don\'t like ' + fear[0] + '," {he} said to {friend}.',
                    "{He} told {his} friend {friend}, \"I'm scared of " + fear[0] + '."')),
        rng.choice(('"Don\'t be scared," said {friend}. "I will stay with you."',
                    '"Let\'s be brave together," said {friend}.')),
        "{Hero} held {friend} close and took a deep breath.",
        "Then {he} saw that " + fear[1] + ".",
        "{Hero} was not scared anymore. {He} felt brave and {feeling}.",
    ]


def _sharing(rng: random.Random) -> list[str]:
    return [
        "{Hero} had {a_thing}. It was {his} favorite toy.",
        "One day, {friend} came to play at {place}.",
        '"Can I play with your {thing}?" asked {friend}.',
        rng.choice(('"No, it\'s mine," said {hero}. {Friend} was sad.',
                    '{Hero} held the {thing} tight and said, "No!" {Friend} began to cry.')),
        "{Hero} saw that {friend} was sad, and {he} felt bad.",
        '"I\'m sorry," said {hero}. "We can play with it together."',
        "They took turns with the {thing} and had lots of fun.",
        "{Hero} learned that sharing makes everyone happy.",
    ]


def _journey(rng: random.Random, goal: str) -> list[str]:
    return [
        "{Hero} wanted to " + goal + ".",
        rng.choice(("So one morning, {he} packed some food and set off with {friend}.",
                    '"Will you come with me?" {he} asked {friend}. "Yes!" said {friend}, and they set off.')),
        "They walked past {place} and over a little bridge.",
        rng.choice(("Then it began to rain. They hid under a tree until the rain stopped.",
                    "Soon they were tired, so they sat down and ate their food.")),
        "At last, they were able to " + goal + ". It was so beautiful!",
        "When they came home, {hero} told {his} mom all about it.",
    ]


def _making(rng: random.Random, make: tuple[str, str, str, str]) -> list[str]:
    what, obj, problem, fix = make
    return [
        "One day, {hero} and {friend} wanted to " + what + ".",
        '"Let\'s make the best one ever!" said {hero}.',
        "They worked very hard. But then " + problem + ".",
        rng.choice(('"Oh no!" said {friend}. "What do we do now?"',
                    "{Friend} was sad. \"Oh no, it\'s ruined,\" {fhe} said.")),
        '"Don\'t worry," said {hero}. "We can fix it."',
        "So " + fix + ".",
        "In the end, " + obj + " was even better than before.",
    ]


ARCS = ("lost_and_found", "new_friend", "brave", "sharing", "journey", "making")

NEXT_DAY = ("The next day, {hero} woke up early.", "A few days later, {hero} saw {friend} again.",
            "Then something else happened.")

ENDINGS = ("{Hero} and {friend} were {feeling}, and they played together every day.",
           "From that day on, {hero} and {friend} were best friends.",
           "That night, {hero} went to bed with a big smile.",
           "{Hero} felt {feeling}. It was a very good day.")


def _arc(rng: random.Random, lex: Lexicon) -> list[str]:
    arc = rng.choice(ARCS)
    if arc == "lost_and_found":
        return _lost_and_found(rng)
    if arc == "new_friend":
        return _new_friend(rng)
    if arc == "brave":
        return _brave(rng, rng.choice(lex.fears))
    if arc == "sharing":
        return _sharing(rng)
    if arc == "journey":
        return _journey(rng, rng.choice(lex.goals))
    return _making(rng, rng.choice(lex.makes))


def generate_story(rng: random.Random, lex: Lexicon = FULL, arcs: int = 1) -> str:
    """One story from the grammar, drawing every choice from `rng`: an opening, `arcs` arcs, an ending."""
    hero = _character(rng, lex)
    friend = _character(rng, lex, avoid=hero.name)
    body = _arc(rng, lex)
    for _ in range(arcs - 1):  # subtle: no draw here when arcs == 1, so the default corpus never changes
        body += [rng.choice(NEXT_DAY)] + _arc(rng, lex)
    opening = [
        rng.choice(("Once upon a time, there was {a_kind} named {hero}.",
                    "Once upon a time, {a_kind} named {hero} lived {home}.")),
    ]
    if "lived" not in opening[0]:
        opening.append("{He} lived {home}.")
    sentences = opening + body + [rng.choice(ENDINGS)]

    thing = _thing(rng, lex)
    p, fp = PRONOUNS[hero.pronoun], PRONOUNS[friend.pronoun]
    slots = {
        "hero": hero.name, "Hero": hero.name, "friend": friend.name, "Friend": friend.name,
        "a_kind": _a(hero.kind), "a_fkind": _a(friend.kind),
        "he": p["he"], "He": p["He"], "him": p["him"], "his": p["his"], "His": p["His"],
        "fhe": fp["he"], "fhis": fp["his"],
        "thing": thing, "a_thing": _a(thing), "place": rng.choice(lex.places), "home": rng.choice(lex.homes),
        "hiding": rng.choice(lex.hiding), "game": rng.choice(lex.games), "feeling": rng.choice(lex.feelings_end),
    }
    # two or three sentences to a line, like a picture book
    lines, line = [], []
    for s in sentences:
        line.append(s.format(**slots))
        if len(line) == 3 or (len(line) == 2 and rng.random() < 0.5):
            lines.append(" ".join(line))
            line = []
    if line:
        lines.append(" ".join(line))
    return "\n".join(lines)


def generate_stories(n_stories: int = 1000, seed: int = 0, *, vocabulary: float = 1.0, arcs: int = 1) -> str:
    """`n_stories` stories from the seeded grammar, separated by a blank line (about 600 bytes each).

    generate_stories(1000, seed=0) is the default "stories" corpus (a few hundred KB).
    vocabulary: the fraction of each word list used; arcs: story arcs per story (module docstring).
    """
    if n_stories < 1:
        raise ValueError(f"n_stories must be at least 1, got {n_stories}")
    if isinstance(arcs, bool) or not isinstance(arcs, int) or arcs < 1:
        raise ValueError(f"arcs must be an integer >= 1 (story arcs per story), got {arcs!r}")
    lex = FULL if vocabulary == 1 else FULL.shrink(vocabulary)
    rng = random.Random(seed)
    return "\n\n".join(generate_story(rng, lex, arcs) for _ in range(n_stories)) + "\n"
