"""Every user-visible string is translatable, and English has a translation for each."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]


def _extracted() -> set[str]:
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None,
                "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}
    ids = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def _english() -> dict[str, str]:
    with open(ROOT / "translations/en/LC_MESSAGES/messages.po", "rb") as fh:
        catalog = read_po(fh)
    return {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in catalog if m.id}


def test_every_message_has_an_english_translation():
    english = _english()
    missing = sorted(m for m in _extracted() if not english.get(m))
    assert not missing, "run `make i18n-update` and translate:\n" + "\n".join(missing)


def test_translations_keep_their_placeholders():
    import re

    for msgid, msgstr in _english().items():
        if isinstance(msgstr, str) and msgstr:
            names = re.compile(r"%\(\w+\)s")
            assert set(names.findall(msgid)) == set(names.findall(msgstr)), msgid
