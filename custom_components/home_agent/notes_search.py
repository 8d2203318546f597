"""Keyword search over notes (BM25): enough at household scale, in pure Python.

An inverted index (word -> note ids with the word's count) is kept up to date as notes are
added and forgotten, so a search only visits the notes that share a word with the query
(well under a millisecond for a thousand notes). Words are lower-cased, accents kept, a
plural or possessive `s` taken off; very common English words are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
import math
import re

# BM25's usual constants: how fast a word's repetitions stop counting, and how much a
# long note is discounted.
K1 = 1.2
B = 0.75

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "hers",
        "him",
        "his",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "you",
        "your",
        "yours",
        "about",
        "any",
        "can",
        "could",
        "please",
        "tell",
        "know",
        "remember",
        "recall",
        "doing",
    }
)


def words(text: str) -> list[str]:
    """Return the words of a text as the index keeps them."""
    found = []
    for raw in _WORD.findall(text.casefold()):
        if raw in _STOP_WORDS or (len(raw) < 2 and not raw.isdigit()):
            continue
        plural = len(raw) > 3 and raw.endswith("s") and not raw.endswith("ss")
        found.append(raw[:-1] if plural else raw)
    return found


class NoteIndex:
    """BM25 over the texts of a set of notes, by note id."""

    def __init__(self) -> None:
        """Start empty."""
        self._postings: dict[str, dict[str, int]] = {}
        self._lengths: dict[str, int] = {}
        self._total_length = 0

    def __len__(self) -> int:
        """Return how many notes are indexed."""
        return len(self._lengths)

    def add(self, note_id: str, text: str) -> None:
        """Index a note's text (a note's text never changes)."""
        counts = Counter(words(text))
        self._lengths[note_id] = length = sum(counts.values())
        self._total_length += length
        for word, count in counts.items():
            self._postings.setdefault(word, {})[note_id] = count

    def add_many(self, notes: Iterable[tuple[str, str]]) -> None:
        """Index several notes (at start-up)."""
        for note_id, text in notes:
            self.add(note_id, text)

    def remove(self, note_id: str, text: str) -> None:
        """Take a note out of the index."""
        if (length := self._lengths.pop(note_id, None)) is None:
            return
        self._total_length -= length
        for word in set(words(text)):
            postings = self._postings.get(word)
            if postings is not None:
                postings.pop(note_id, None)
                if not postings:
                    del self._postings[word]

    def search(
        self, query: str, allowed: Callable[[str], bool], limit: int
    ) -> list[tuple[str, float]]:
        """Return up to `limit` (note id, score) pairs best first, among the `allowed` ones.

        Equal scores keep the order the notes were indexed in (the same every time); notes
        that share no word with the query are never returned.
        """
        if not self._lengths:
            return []
        count = len(self._lengths)
        average = self._total_length / count or 1.0
        scores: dict[str, float] = {}
        for word in dict.fromkeys(words(query)):
            if not (postings := self._postings.get(word)):
                continue
            idf = math.log(1 + (count - len(postings) + 0.5) / (len(postings) + 0.5))
            for note_id, tf in postings.items():
                norm = K1 * (1 - B + B * self._lengths[note_id] / average)
                scores[note_id] = scores.get(note_id, 0.0) + idf * tf * (K1 + 1) / (tf + norm)
        ranked = sorted(
            ((note_id, score) for note_id, score in scores.items() if allowed(note_id)),
            key=lambda item: -item[1],
        )
        return ranked[:limit]
