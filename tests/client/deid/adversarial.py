"""A seeded generator of adversarial clinical notes, independent of the scrubber.

Each note mixes realistic clinical filler (vitals with units, doses, lab
values, short words) with identifiers of the HIPAA Safe Harbor categories
spelled the way real EHR exports and clinicians write them: other
separators, full-width digits, regrouped numbers, spelled-out e-mails,
written dates, ages over 89 in words, names of relatives and clinicians,
the patient's own name without its apostrophe or accents, CJK text without
spaces, addresses, coordinates, device and vehicle identifiers ...

Nothing here is drawn from the scrubber's baked lists (``client/deid/vocab``)
or its code: names and places come from Faker's locales, numbers from a
seeded :class:`random.Random`, and the spellings from this module's own
templates. Every planted identifier is recorded with its category, its exact
span in the note and the tokens that identify (:class:`Planted`), so that
recall can be measured per category (:func:`survived`), and every word of
filler is recorded too, so that precision can (:func:`kept_filler`).

:func:`adversarial_export` puts the notes into a raw export of
:data:`~tests.client.deid.exports.NOTES_SCHEMA` (the note kept with
``deid = "scrub"``), with each row's own name and address in its
identifier columns (and some name cells left empty).
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
from faker import Faker

from tests.client.deid.exports import raw_export

CATEGORIES = (
    "name",
    "own_name",
    "geographic",
    "date",
    "age",
    "phone",
    "fax",
    "email",
    "handle",
    "ssn",
    "mrn",
    "health_plan",
    "account",
    "licence",
    "vehicle",
    "device",
    "url",
    "ip",
)
"""The categories planted (Safe Harbor's, with names split into the patient's
own and others', e-mail handles apart)."""

LOCALES = ("en_US", "fr_FR", "de_DE", "vi_VN", "zh_CN", "ja_JP", "es_ES", "it_IT")
_CJK = ("zh_CN", "ja_JP")

_STRUCTURAL = frozenset(
    (  # noqa: SIM905 (a word list)
        "at dot com org net edu io of the on dr mr mrs ms prof doctor box po rr "
        "route street st ave avenue road rd lane ln drive apt suite unit ext x "
        "y o yo yrs years year age aged old m f male female http https www st nd "
        "rd th and in tel fax ph no nr id mrn ssn lat lon n w e s yr yrs y/o npi "
        "dea vin sn mbi acct inc llc sons logistics bakery motors county general "
        "hospital memorial clinic de van von da del la le di du dos das tp frau "
        "herr mme dds md rn phd np pa dvm eng dipl ing med"
    ).split()
)
"""Words that hold no identifier by themselves ("at", "dot", "Dr", "Box")."""


def fold(text: str) -> str:
    """NFKC, accents stripped, casefolded: the form tokens are compared in."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.casefold()


_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_TAG = re.compile(r"\[[A-Z>0-9]+\]")


def tokens(text: str) -> list[str]:
    """Letters-only and digits-only runs of the folded text."""
    return _TOKEN.findall(fold(text))


def _wide(char: str) -> bool:
    return any(
        "CJK" in unicodedata.name(c, "") or "HIRAGANA" in unicodedata.name(c, "")
        for c in char
    )


@dataclass(frozen=True)
class Planted:
    """One identifier planted in a note.

    Attributes
    ----------
    category : str
        One of :data:`CATEGORIES`.
    start, end : int
        Its span in the note.
    value : str
        ``note[start:end]``.
    key : tuple of str
        Its identifying tokens (folded; structural words left out).
    """

    category: str
    start: int
    end: int
    value: str
    key: tuple[str, ...]


@dataclass
class Note:
    """A note, what was planted in it, and its filler tokens."""

    text: str
    planted: list[Planted] = field(default_factory=list)
    filler: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.planted: list[Planted] = []
        self.filler: list[str] = []
        self.size = 0

    def text(self, text: str, filler: bool = False) -> None:
        self.parts.append(text)
        self.size += len(text)
        if filler:
            self.filler += tokens(text)

    def ident(self, category: str, value: str) -> None:
        key = tuple(
            t
            for t in tokens(value)
            if t not in _STRUCTURAL and (len(t) > 1 or t.isdigit() or _wide(t))
        )
        if key:
            self.planted.append(
                Planted(category, self.size, self.size + len(value), value, key)
            )
        self.text(value)

    def note(self) -> Note:
        return Note("".join(self.parts), self.planted, self.filler)


# --- clinical filler --------------------------------------------------------

_FILLER = (
    "BP {sys}/{dia} mmHg, HR {hr} bpm, RR {rr}, SpO2 {spo2}% on RA, T {temp} C.",
    "Started metoprolol {dose} mg PO BID; aspirin 81 mg daily.",
    "Creatinine {cr} mg/dL, K {k} mmol/L, Hb {hb} g/dL, troponin {trop} ng/mL.",
    "Pt c/o SOB on exertion, no chest pain at rest.",
    "Weight {wt} kg, BMI {bmi}.",
    "Lisinopril {lis} mg daily, atorvastatin 40 mg at night.",
    "Echo: EF {ef}%, mild mitral regurgitation.",
    "Denies fever, chills, nausea or vomiting.",
    "Plan: repeat ECG in {n} hours, follow-up in {w} weeks.",
    "Exercise test stopped at {mets} METs for fatigue.",
    "LDL {ldl} mg/dL, HbA1c {a1c}%.",
    "Furosemide {furo} mg IV x1, then 40 mg PO daily.",
    "No edema. Lungs clear. Heart regular, no murmur.",
    "Takes {cig} cigarettes a day, quit alcohol.",
    "Glucose {glu} mg/dL fasting.",
    "Pain {pain}/10, improved with rest.",
)


def _filler(rng: random.Random) -> str:
    template = rng.choice(_FILLER)
    return template.format(
        sys=rng.randint(95, 190),
        dia=rng.randint(50, 110),
        hr=rng.randint(45, 140),
        rr=rng.randint(10, 30),
        spo2=rng.randint(85, 100),
        temp=f"{rng.uniform(35.5, 39.9):.1f}",
        dose=rng.choice((12.5, 25, 50, 100)),
        cr=f"{rng.uniform(0.5, 3.5):.1f}",
        k=f"{rng.uniform(3.0, 6.0):.1f}",
        hb=f"{rng.uniform(7.0, 17.0):.1f}",
        trop=f"{rng.uniform(0.01, 2.5):.2f}",
        wt=rng.randint(45, 140),
        bmi=f"{rng.uniform(17, 45):.1f}",
        lis=rng.choice((5, 10, 20, 40)),
        ef=rng.randint(15, 70),
        n=rng.randint(2, 12),
        w=rng.randint(1, 8),
        mets=f"{rng.uniform(2, 14):.1f}",
        ldl=rng.randint(40, 220),
        a1c=f"{rng.uniform(4.5, 12):.1f}",
        furo=rng.choice((20, 40, 80)),
        cig=rng.randint(2, 40),
        glu=rng.randint(60, 400),
        pain=rng.randint(0, 10),
    )


# --- spellings --------------------------------------------------------------

_SEPARATORS = ("-", ".", "/", "\u2013", "_", "\t", "\u00a0", " ", "\u2011", "")
_FULL_WIDTH = str.maketrans(
    "0123456789@", "".join(map(chr, range(0xFF10, 0xFF1A))) + "\uff20"
)


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(
        str(rng.randint(0, 9)) for _ in range(n - 1)
    )


def _grouped(digits: str, groups: Iterable[int], sep: str) -> str:
    out, at = [], 0
    for size in groups:
        out.append(digits[at : at + size])
        at += size
    return sep.join(out)


def _maybe_wide(rng: random.Random, text: str) -> str:
    return text.translate(_FULL_WIDTH) if rng.random() < 0.15 else text


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]
_TENS = {90: "ninety", 100: "one hundred"}
_UNITS_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Margaret": "Peggy",
    "Richard": "Dick",
    "Katherine": "Kate",
    "Jennifer": "Jen",
    "Alexander": "Sasha",
    "Theodore": "Teddy",
    "Patricia": "Patty",
    "Edward": "Ted",
    "Susan": "Sue",
}
_RELATIONS = ("daughter", "son", "wife", "husband", "sister", "brother", "niece")
_EMPLOYER_SUFFIX = ("Inc.", "LLC", "& Sons", "Logistics", "Bakery", "Motors")


@dataclass
class Person:
    """The patient of a note."""

    first: str
    last: str
    locale: str
    street: str
    city: str

    @property
    def full(self) -> str:
        if self.locale in _CJK:
            return f"{self.last}{self.first}"
        return f"{self.first} {self.last}"


def seeded_faker(locale: str, seed: int) -> Faker:
    """A Faker whose draws depend on ``seed`` only.

    Some of Faker's lists are built from a set (it_IT's ``cities``), so their
    order, and what a seeded draw picks, changes with the process's string
    hashing; they are sorted here.
    """
    fake = Faker(locale)
    fake.seed_instance(seed)
    for provider in fake.get_providers():
        for name in ("cities",):
            values = getattr(provider, name, None)
            if isinstance(values, list):
                setattr(provider, name, sorted(values))
    return fake


class Generator:
    """Adversarial notes, seeded; see the module docstring."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        for index, locale in enumerate(LOCALES):
            self.fakers[locale] = seeded_faker(locale, seed * 100 + index)
        self.us = self.fakers["en_US"]

    # people and places
    def person(self) -> Person:
        rng = self.rng
        locale = rng.choice(LOCALES)
        fake = self.fakers[locale]
        first, last = fake.first_name(), fake.last_name()
        roll = rng.random()
        if roll < 0.08:
            last = rng.choice(
                ("O'Brien", "D'Angelo", "O'Neill", "N'Diaye", "L'Heureux")
            )
            last = last[:2] + self.us.last_name() if rng.random() < 0.5 else last
        elif roll < 0.16:
            last = f"{last}-{self.us.last_name()}"
        elif roll < 0.22:
            first = rng.choice(list(_NICKNAMES))
        elif roll < 0.27:
            locale, last = "vi_VN", "Do"
            first = self.fakers["vi_VN"].first_name()
        street = self.us.street_address()
        return Person(first, last, locale, street, fake.city())

    def other_name(self) -> str:
        locale = self.rng.choice(LOCALES)
        fake = self.fakers[locale]
        if locale in _CJK:
            return fake.last_name() + fake.first_name()
        return fake.last_name() if self.rng.random() < 0.5 else fake.name()

    # one identifier, appended to the builder
    def plant(self, b: _Builder, category: str, who: Person) -> None:  # noqa: PLR0912, PLR0915
        rng = self.rng
        choice = rng.randrange(100)
        if category == "ssn":
            d = _digits(rng, 9)
            groups = rng.choice(((3, 2, 4), (3, 3, 3), (9,), (3, 6), (5, 4)))
            sep = rng.choice(_SEPARATORS)
            b.text(rng.choice(("SSN ", "SS#: ", "soc sec no. ", "Social: ", "ssn:")))
            b.ident("ssn", _maybe_wide(rng, _grouped(d, groups, sep)))
        elif category == "mrn":
            d = _digits(rng, rng.choice((7, 8, 10)))
            groups = rng.choice(((len(d),), (4, len(d) - 4), (3, 3, len(d) - 6)))
            b.text(rng.choice(("MRN ", "MRN#", "Med rec no. ", "chart ", "(MRN: ")))
            b.ident(
                "mrn", _maybe_wide(rng, _grouped(d, groups, rng.choice(_SEPARATORS)))
            )
            b.text(rng.choice(("", ")", ".")))
        elif category in ("phone", "fax"):
            area, ex, line = _digits(rng, 3), _digits(rng, 3), _digits(rng, 4)
            sep = rng.choice(("-", ".", " ", "\u2011", "\u00a0", "\u2013", "/"))
            forms = (
                f"{ex}-{line}",
                f"({area}) {ex}-{line}",
                f"{area}{sep}{ex}{sep}{line}",
                f"+1 {area} {ex} {line}",
                f"+33 {_digits(rng, 1)} {line[:2]} {line[2:]} {ex[:2]} {area[:2]}",
                f"+49 (0){area} {ex}{line}",
                f"{area}{ex}{line}",
                f"{area[:2]} {area[2]}{ex[:1]} {ex[1:]} {line}",
                f"{area}-{ex}-{line} ext. {rng.randint(10, 9999)}",
                f"{ex}{sep}{line} x{rng.randint(10, 999)}",
            )
            value = _maybe_wide(rng, forms[choice % len(forms)])
            lead = (
                ("Fax ", "fax: ", "faxed to ")
                if category == "fax"
                else (
                    "call ",
                    "Tel ",
                    "ph: ",
                    "cell ",
                    "reach daughter at ",
                    "home phone ",
                )
            )
            b.text(rng.choice(lead))
            b.ident(category, value)
        elif category == "email":
            fake = self.fakers[rng.choice(("en_US", "fr_FR", "de_DE"))]
            user, host = fold(fake.user_name()), fold(fake.domain_word())
            user = re.sub(r"[^a-z0-9._]", "", user) or f"mail{rng.randint(100, 999)}"
            forms = (
                f"{user}@{host}.com",
                f"{user} at {host} dot com",
                f"{user}(at){host}(dot)org",
                f"{user} [at] {host} [dot] net",
                f"{user}\uff20{host}.de",
                f"{user}@{host}",
                f"{user} @ {host} . com",
                f"{user.replace('.', ' dot ')} at {host} dot com",
            )
            b.text(rng.choice(("email ", "e-mail: ", "sent to ", "contact ")))
            b.ident("email", forms[choice % len(forms)])
        elif category == "handle":
            base = (
                fold(who.first + who.last)
                if rng.random() < 0.5
                else fold(self.us.user_name())
            )
            base = re.sub(r"[^a-z0-9_]", "", base) or f"user{rng.randint(100, 999)}"
            forms = (f"@{base}", f"@{base}{rng.randint(1, 99)}", f"instagram: {base}")
            b.text(rng.choice(("Follows ", "Posted as ", "Twitter ", "handle ")))
            value = forms[choice % len(forms)]
            if value.startswith("instagram: "):
                b.text("instagram: ")
                value = value[len("instagram: ") :]
            b.ident("handle", value)
        elif category == "date":
            year = rng.randint(1930, 2024)
            month, day = rng.randint(1, 12), rng.randint(1, 28)
            mon = _MONTHS[month - 1]
            forms = (
                f"{day:02d}-{mon[:3].upper()}-{year % 100:02d}",
                f"{day:02d}-{mon[:3].upper()}-{year}",
                f"{month}/{day}",
                f"{mon} {day}",
                f"{day} {mon[:3]}",
                f"the {_ORDINALS[day - 1 if day <= 20 else 19]} of {mon}",
                f"{mon[:3]}. {day}th",
                f"Christmas {year}",
                f"Thanksgiving {year}",
                f"{year}年{month}月{day}日",
                f"{year}.{month:02d}.{day:02d}",
                f"{month:02d}/{day:02d}/{year}",
                f"{mon} {day}, {year}",
                f"{day}.{month}.{year % 100:02d}",
                f"{year}{month:02d}{day:02d}",
            )
            b.text(
                rng.choice(
                    ("seen ", "admitted ", "on ", "since ", "DOB ", "last visit ")
                )
            )
            b.ident("date", _maybe_wide(rng, forms[choice % len(forms)]))
        elif category == "age":
            age = rng.randint(90, 104)
            words = _TENS[90] if age < 100 else _TENS[100]
            rest = age % 10 if age < 100 else age - 100
            spelled = words + (f"-{_UNITS_WORDS[rest - 1]}" if rest else "")
            forms = (
                f"{age} y.o.",
                f"{age} years of age",
                f"{age}M",
                f"{age} F",
                f"{age}yo",
                f"{age}-year-old",
                f"{age} yr old",
                f"{spelled} years old",
                f"{spelled}-year-old",
                f"aged {age}",
                f"age {spelled}",
                f"{age} y/o",
            )
            b.text(rng.choice(("Pt is a ", "", "Patient, ", "Widow, ")))
            b.ident("age", forms[choice % len(forms)])
        elif category == "name":
            other = self.other_name()
            forms = (
                ("Dr. ", other, " reviewed"),
                ("seen with her ", f"{rng.choice(_RELATIONS)} ", other),
                (
                    "works at ",
                    f"{self.us.last_name()} {rng.choice(_EMPLOYER_SUFFIX)}",
                    "",
                ),
                ("per Dr ", other, ""),
                ("Attending: ", other, ""),
                ("NOK: ", other, " (" + rng.choice(_RELATIONS) + ")"),
                ("discussed with ", other, ", RN"),
            )
            lead, value, tail = forms[choice % len(forms)]
            if lead.startswith("seen with"):
                b.text(lead + value)
                b.ident("name", tail)
            else:
                b.text(lead)
                b.ident("name", value)
                b.text(tail)
        elif category == "own_name":
            self._own_name(b, who, choice)
        elif category == "geographic":
            self._place(b, who, choice)
        elif category == "health_plan":
            mbi = (
                f"{rng.randint(1, 9)}{rng.choice('ACDEFGHJKMNPQRTUVWXY')}"
                f"{rng.choice('ACDEFGHJKMNPQRTUVWXY0123456789')}{rng.randint(0, 9)}-"
                f"{rng.choice('ACDEFGHJKMNPQRTUVWXY')}{rng.choice('ACDEFGHJKMNPQRTUVWXY0123456789')}"
                f"{rng.randint(0, 9)}-{rng.choice('ACDEFGHJKMNPQRTUVWXY')}"
                f"{rng.choice('ACDEFGHJKMNPQRTUVWXY')}{rng.randint(0, 9)}{rng.randint(0, 9)}"
            )
            forms = (
                mbi,
                mbi.replace("-", ""),
                f"W{_digits(rng, 9)}",
                f"XEH{_digits(rng, 9)}01",
            )
            b.text(rng.choice(("Medicare ", "MBI ", "member id ", "plan #")))
            b.ident("health_plan", forms[choice % len(forms)])
        elif category == "account":
            card = _digits(rng, 16)
            forms = (
                _grouped(card, (4, 4, 4, 4), " "),
                _grouped(card, (4, 4, 4, 4), "-"),
                f"{_digits(rng, 4)} {_digits(rng, 4)}",
                f"ACCT-{_digits(rng, 8)}",
                f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 3)}",
            )
            b.text(rng.choice(("card ", "acct ", "account no. ", "billing ")))
            b.ident("account", _maybe_wide(rng, forms[choice % len(forms)]))
        elif category == "licence":
            letter = rng.choice("ABCDEFGHJKLMNPRSTWYZ")
            forms = (
                f"{letter}{_digits(rng, 7)}",
                f"{letter}{_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
                f"DEA {letter}{rng.choice('ABFM')}{_digits(rng, 7)}",
                f"NPI {_digits(rng, 10)}",
            )
            b.text(rng.choice(("driver licence ", "DL# ", "lic. ", "")))
            b.ident("licence", forms[choice % len(forms)])
        elif category == "vehicle":
            vin = "".join(
                rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(17)
            )
            plate = f"{rng.randint(1, 9)}{''.join(rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ') for _ in range(3))}{_digits(rng, 3)}"
            forms = (
                vin,
                plate,
                f"{plate[:4]} {plate[4:]}",
                f"{plate[1:4]}-{plate[4:]}",
            )
            b.text(rng.choice(("VIN ", "plate ", "car reg ", "vehicle ")))
            b.ident("vehicle", forms[choice % len(forms)])
        elif category == "device":
            mac = ":".join(f"{rng.randint(0, 255):02x}" for _ in range(6))
            forms = (
                f"SN{_digits(rng, 8)}",
                mac,
                mac.replace(":", "-").upper(),
                f"{rng.choice('ABCDEFGHJKLMNPRSTWXYZ')}{rng.choice('ABCDEFGHJKLMNPRSTWXYZ')}{_digits(rng, 6)}",
                f"PJN{_digits(rng, 6)}H",
            )
            b.text(rng.choice(("pacemaker serial ", "ICD s/n ", "device ", "pump SN ")))
            b.ident("device", forms[choice % len(forms)])
        elif category == "url":
            host = re.sub(r"[^a-z0-9]", "", fold(self.us.domain_word())) or "site"
            forms = (
                f"www.{host}.com/{re.sub('[^a-z]', '', fold(who.last))[:6] or 'home'}",
                f"{host}.org",
                f"https://{host}.net/p?id={_digits(rng, 5)}",
                f"{host}.com/profile",
                f"facebook.com/{re.sub('[^a-z]', '', fold(who.first))}{rng.randint(1, 99)}",
            )
            b.text(rng.choice(("see ", "portal ", "blog at ", "")))
            b.ident("url", forms[choice % len(forms)])
        elif category == "ip":
            v6 = ":".join(f"{rng.randint(0, 65535):x}" for _ in range(3))
            forms = (
                ".".join(str(rng.randint(1, 254)) for _ in range(4)),
                f"2001:db8::{v6}",
                f"fe80::{rng.randint(1, 65535):x}",
                f"{rng.randint(10, 254)}.{rng.randint(0, 254)}.{rng.randint(0, 254)}.{rng.randint(1, 254)}:8080",
            )
            b.text(rng.choice(("from IP ", "host ", "login ")))
            b.ident("ip", forms[choice % len(forms)])
        else:  # pragma: no cover
            raise ValueError(category)

    def _own_name(self, b: _Builder, who: Person, choice: int) -> None:
        first, last = who.first, who.last
        if who.locale in _CJK:
            forms = (
                ("患者", who.full, "今日复诊。"),
                ("", who.full, "さんは胸痛で来院。"),
                ("", last, "先生の紹介"),
            )
            lead, value, tail = forms[choice % len(forms)]
            b.text(lead)
            b.ident("own_name", value)
            b.text(tail)
            return
        plain_last = re.sub(r"['\u2019-]", "", last)
        spaced_last = re.sub(r"['\u2019-]", " ", last)
        ascii_first = fold(first).title() if first.isascii() is False else first
        forms = (
            ("Pt ", f"{first} {last}", " seen"),
            ("", f"{last}, {first}", " presents"),
            ("Patient ", plain_last, " reports"),
            ("Mr. ", spaced_last, " is"),
            ("", unicodedata.normalize("NFD", f"{first} {last}"), " declines"),
            ("Pt ", f"{ascii_first} {fold(last).title()}", " agrees"),
            ("prefers ", _NICKNAMES.get(first, first), ""),
            ("", f"{last.upper()}, {first.upper()}", ""),
            ("Mrs. ", last, " was seen"),
            ("", f"{first[0]}. {last}", " tolerated diet"),
        )
        lead, value, tail = forms[choice % len(forms)]
        b.text(lead)
        b.ident("own_name", value)
        b.text(tail)

    def _place(self, b: _Builder, who: Person, choice: int) -> None:
        rng, us = self.rng, self.us
        forms = (
            ("lives in ", self.fakers[rng.choice(LOCALES)].city(), ""),
            ("from ", us.city(), f", {us.state_abbr()}"),
            ("", f"{us.last_name()} County", " resident"),
            ("address ", who.street, ""),
            ("", f"PO Box {rng.randint(1, 9999)}", ""),
            ("", f"RR {rng.randint(1, 9)} Box {rng.randint(1, 999)}", ""),
            (
                "found at ",
                f"{rng.uniform(-80, 80):.5f}, {rng.uniform(-170, 170):.5f}",
                "",
            ),
            ("transferred from ", f"{us.city()} General Hospital", ""),
            ("", f"{rng.randint(1, 9999)} {us.street_name()}", ""),
            ("home in ", who.city, ""),
            ("", f"{us.city()} Memorial Clinic", ""),
            ("GPS ", f"{rng.uniform(20, 60):.4f}N {rng.uniform(1, 120):.4f}W", ""),
        )
        lead, value, tail = forms[choice % len(forms)]
        b.text(lead)
        b.ident("geographic", value)
        b.text(tail)

    def note(self, who: Person, per_note: int = 3) -> Note:
        """One note: filler sentences with ``per_note`` identifiers planted."""
        rng = self.rng
        b = _Builder()
        categories = rng.sample(CATEGORIES, per_note)
        pieces: list[Callable[[], None]] = [
            (lambda: b.text(_filler(rng), filler=True))
            for _ in range(rng.randint(2, 4))
        ]
        for category in categories:
            pieces.append(lambda c=category: self._sentence(b, c, who))  # type: ignore[misc]
        rng.shuffle(pieces)
        for index, piece in enumerate(pieces):
            if index:
                b.text(rng.choice((" ", "  ", "\n", " ")))
            piece()
        return b.note()

    def _sentence(self, b: _Builder, category: str, who: Person) -> None:
        self.plant(b, category, who)
        b.text(self.rng.choice((".", ";", ",", ". ")))


def notes(
    count: int, seed: int = 0, per_note: int = 3
) -> tuple[list[Note], list[Person]]:
    """``count`` adversarial notes and their patients."""
    gen = Generator(seed)
    people = [gen.person() for _ in range(count)]
    return [gen.note(who, per_note) for who in people], people


def adversarial_export(count: int, seed: int = 0) -> tuple[pd.DataFrame, list[Note]]:
    """A raw export of NOTES_SCHEMA whose notes are adversarial.

    Each row's ``patient_name``, ``street_address`` and ``city`` are its
    patient's; one row in 20 has no name (every name in its note must go
    all the same).
    """
    frame = raw_export(count, seed)
    made, people = notes(count, seed)
    names = [p.full for p in people]
    for row in range(0, count, 20):
        names[row] = None  # type: ignore[call-overload]
    frame["patient_name"] = pd.array(names, dtype="string[pyarrow]")
    frame["street_address"] = pd.array(
        [p.street for p in people], dtype="string[pyarrow]"
    )
    frame["city"] = pd.array([p.city for p in people], dtype="string[pyarrow]")
    frame["note"] = pd.array([n.text for n in made], dtype="string[pyarrow]")
    return frame, made


# --- scoring ----------------------------------------------------------------


def _scrubbed_tokens(scrubbed: str) -> tuple[Counter[str], str]:
    text = _TAG.sub(" ", scrubbed)
    return Counter(tokens(text)), fold(text)


def survived(note: Note, scrubbed: str | None) -> list[Planted]:
    """The planted identifiers of ``note`` with a token left in ``scrubbed``.

    A token survives when the scrubbed text (tags removed) holds it more
    often than the note outside planted identifiers does (a "93" of an age
    is not confused with "SpO2 93%"); a CJK token when it is still a
    substring (CJK text has no spaces).
    """
    if scrubbed is None:
        return []
    found, flat = _scrubbed_tokens(scrubbed)
    background = Counter(
        tokens("".join(_outside(note.text, [(p.start, p.end) for p in note.planted])))
    )
    missed = []
    for planted in note.planted:
        for token in planted.key:
            wide = _wide(token)
            if (wide and token in flat) or (
                not wide and found[token] > background[token]
            ):
                missed.append(planted)
                break
    return missed


def _outside(text: str, spans: list[tuple[int, int]]) -> list[str]:
    out, at = [], 0
    for start, end in sorted(spans):
        out.append(text[at:start] + " ")
        at = end
    out.append(text[at:])
    return out


def kept_filler(note: Note, scrubbed: str | None) -> tuple[int, int]:
    """Filler tokens kept and filler tokens in all (for precision)."""
    if scrubbed is None:
        return 0, 0
    found, _ = _scrubbed_tokens(scrubbed)
    want = Counter(note.filler)
    return sum(min(found[t], n) for t, n in want.items()), sum(want.values())


def recall(
    notes_: list[Note], scrubbed: list[str | None]
) -> dict[str, tuple[int, int]]:
    """Per category: identifiers caught and planted."""
    planted: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for note, text in zip(notes_, scrubbed, strict=True):
        missed = {id(p) for p in survived(note, text)}
        for p in note.planted:
            planted[p.category] += 1
            caught[p.category] += id(p) not in missed
    return {c: (caught[c], planted[c]) for c in CATEGORIES}


_STAND_IN = "walrus"
"""A safe word the scrubber keeps, standing where an identifier was."""


def leak_probes(
    notes_: list[Note], scrub: Callable[[list[str]], list[str | None]]
) -> list[tuple[str, str]]:
    """Scrubbed notes with one identifier put back whole, as a scrubber miss would.

    Each identifier is replaced by a stand-in word, the note scrubbed with
    ``scrub`` and the identifier written back in place of the stand-in:
    what the residual check must flag. Returns ``(category, text)`` pairs
    (notes where the stand-in did not survive are left out).
    """
    texts, which = [], []
    for note in notes_:
        for planted in note.planted:
            texts.append(
                f"{note.text[: planted.start]} {_STAND_IN} {note.text[planted.end :]}"
            )
            which.append(planted)
    probes = []
    for text, planted in zip(scrub(texts), which, strict=True):
        if text is not None and _STAND_IN in text:
            probes.append((planted.category, text.replace(_STAND_IN, planted.value, 1)))
    return probes
