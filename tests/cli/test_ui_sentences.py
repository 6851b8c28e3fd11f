"""Evidence reasons read as sentences wherever they are joined (console pages and the scan report)."""

from distillguard.ui import sentences


def test_reasons_join_as_sentences_not_semicolons():
    text = sentences(["2 clusters of 14 accounts in total, linked to each other",
                      "Of the campaign's 14 accounts, 12 share 2 payment fingerprints."])
    assert text == ("2 clusters of 14 accounts in total, linked to each other. "
                    "Of the campaign's 14 accounts, 12 share 2 payment fingerprints.")
    assert "; O" not in text


def test_empty_and_blank_reasons_give_nothing():
    assert sentences(None) == ""
    assert sentences(["", "  "]) == ""
    assert sentences(["why?"]) == "Why?"
