"""Every citation of every parameter set and board resolves inside the repository:
the keys a source names are entries of twin/parameters/citations.bib, a section a
source cites exists in the document its key points to, and every bib entry is an
outside publication or a file of this repository.

Run: .venv/bin/python -m pytest tests/twin/test_citations.py -q
"""
import re
from pathlib import Path

import pytest

from twin.parameters import available_boards, available_parameter_sets, citation_keys, load_board, \
    load_parameter_set
from twin.parameters._entries import CITATIONS_BIB

ROOT = Path(__file__).resolve().parents[2]

# A bib entry of this repository says so: howpublished = {bms-twin <path>}.
IN_REPO = re.compile(r"^bms-twin (\S+)$")
# What makes an entry an outside publication one can look up.
PUBLISHED = ("doi", "url", "journal", "number", "publisher")
# Citation-shaped words in a source: an author-year key, a *_md document key, or
# "<key> section <n>". Each must be a bib key, so a reference to a key that left the
# bib cannot pass as plain prose.
AUTHOR_YEAR = re.compile(r"\b[A-Z][A-Za-z]+(?:19|20)\d\d\b")
DOC_KEY = re.compile(r"\b\w+_md\b")
SECTION = re.compile(r"\b(\w+) section (\d+)\b")


def bib_entries() -> dict:
    """key -> {field: value} of citations.bib (values in braces, none nested)."""
    text = CITATIONS_BIB.read_text(encoding="utf-8")
    entries = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"(\w+)\s*=\s*\{([^{}]*)\}", match.group(3)))
        fields["type"] = match.group(1)
        entries[match.group(2)] = fields
    return entries


def every_source():
    """(where, source text) of every entry of every shipped set and board."""
    for name in available_parameter_sets():
        params = load_parameter_set(name)
        for field, source in {**params.sources, **params.design_sources}.items():
            yield "%s.%s" % (name, field), source
    for name in available_boards():
        board = load_board(name)
        for field, source in board.sources.items():
            yield "board %s.%s" % (name, field), source


def document_of(key: str) -> Path:
    return ROOT / IN_REPO.match(bib_entries()[key]["howpublished"]).group(1)


def test_the_bib_parser_reads_every_entry():
    entries = bib_entries()
    assert set(entries) == citation_keys()
    assert entries["seed"]["number"] == "WO 99/43034"
    assert document_of("calibration_md") == ROOT / "docs" / "calibration.md"


@pytest.mark.parametrize("key", sorted(citation_keys()))
def test_every_bib_entry_is_published_or_a_file_of_this_repository(key):
    fields = bib_entries()[key]
    where = IN_REPO.match(fields.get("howpublished", ""))
    if where:
        assert (ROOT / where.group(1)).is_file(), "%s: %s is not in the repository" % (key, where.group(1))
    else:
        published = [f for f in PUBLISHED if fields.get(f)] + (
            ["arXiv"] if fields.get("howpublished", "").startswith("arXiv:") else [])
        assert published, "%s: neither a publication (%s, arXiv) nor a bms-twin file" % (
            key, ", ".join(PUBLISHED))
    assert not re.search(r"(^|[\s{])/\w", " ".join(fields.values())), "%s names an absolute path" % key


def test_every_citation_shaped_word_of_every_source_is_a_bib_key():
    keys = citation_keys()
    unknown = []
    for where, source in every_source():
        for word in AUTHOR_YEAR.findall(source) + DOC_KEY.findall(source):
            if word not in keys:
                unknown.append((where, word))
    assert unknown == []


def test_every_cited_section_exists_in_the_cited_document():
    cited = set()
    for where, source in every_source():
        for key, number in SECTION.findall(source):
            assert key in citation_keys(), "%s cites %s section %s: no such key" % (where, key, number)
            cited.add((key, int(number)))
    assert ("calibration_md", 0) in cited            # the sets do cite the derivations
    for key, number in sorted(cited):
        headings = re.findall(r"^## (\d+)\. ", document_of(key).read_text(encoding="utf-8"), re.M)
        assert str(number) in headings, "%s has no section %d (its sections: %s)" % (key, number, headings)


def test_the_citation_checks_catch_what_they_look_for():
    assert AUTHOR_YEAR.findall("as in Nobody1999 and Yu1997, not in 2e-6 S/cm") == ["Nobody1999", "Yu1997"]
    assert DOC_KEY.findall("twin_anchors section 3, hal_md, calibration_md") == ["hal_md", "calibration_md"]
    assert SECTION.findall("derived: ... (calibration_md section 4)") == [("calibration_md", "4")]
    assert "twin_anchors" not in citation_keys()
