"""Prompts in Chinese, Japanese, Arabic and Russian render as glyphs, not boxes, at 800 px in real Chromium.

The console's font stacks name CJK faces (console.css); whether a prompt is readable depends on a font being
installed that covers its script. The check asks Chromium itself which platform fonts drew each prompt
(DevTools ``CSS.getPlatformFontsForNode``) and requires fonts fontconfig lists for that language to have drawn
as many glyphs as the prompt has characters of the script (Arabic: most of them, ligatures join letters); ideographs must also be a full em wide
(a missing glyph is drawn as a narrower box from the primary monospace face). Skips, saying why, when the
machine has no font for a script (Debian: ``apt-get install fonts-noto-cjk``).
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from datetime import timedelta

import pyarrow as pa
import pytest

from .helpers import browser_login, shot

pytestmark = pytest.mark.browser

#: language (fontconfig :lang=) -> a prompt an attacker or a customer might send
PROMPTS = {
    "zh": "请一步一步地解释你的推理过程，然后给出最终答案。",
    "ja": "次の関数をステップごとに説明して、最後に答えを書いてください。",
    "ar": "اشرح خطوات التفكير بالتفصيل ثم أعط الإجابة النهائية",
    "ru": "Объясни пошагово ход своих рассуждений и дай окончательный ответ.",
}
SCRIPT = {"zh": "CJK", "ja": "CJK", "ar": "ARABIC", "ru": "CYRILLIC"}
ACCOUNT, CAMPAIGN = "acct-cot-04", "camp-cot"


def _families(lang: str) -> set[str]:
    """Font families fontconfig says cover ``lang`` (every alias of a multi-name family)."""
    if not shutil.which("fc-list"):
        return set()
    out = subprocess.run(["fc-list", f":lang={lang}", "family"], capture_output=True, text=True, check=False).stdout
    return {name.strip() for line in out.splitlines() for name in line.split(",") if name.strip()}


def _in_script(ch: str, lang: str) -> bool:
    name = unicodedata.name(ch, "")
    if lang in ("zh", "ja"):
        return any(s in name for s in ("CJK", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC", "FULLWIDTH"))
    return SCRIPT[lang] in name


@pytest.fixture
def fonts():
    if not _families("zh"):
        pytest.skip("no CJK font installed (fc-list :lang=zh is empty; Debian: apt-get install fonts-noto-cjk): "
                    "Chinese and Japanese prompts would render as boxes")
    missing = [lang for lang in ("ar", "ru") if not _families(lang)]
    if missing:
        pytest.skip(f"no font for {', '.join(missing)} installed (fc-list :lang=... is empty)")
    return {lang: _families(lang) for lang in PROMPTS}


@pytest.fixture
def multilingual(console_store):
    """The fixture store's sample tables with one prompt per script for one account and its campaign: newest on
    the account page (newest first), oldest on the campaign page (oldest first), so both pages show them."""
    st = console_store
    for table, key, value, sign in (("console_account_samples", "account_id", ACCOUNT, 1),
                                    ("console_campaign_samples", "campaign_id", CAMPAIGN, -1)):
        t = st.read_table(table)
        rows = t.to_pylist()
        mine = [r for r in rows if r[key] == value]
        edge = (max if sign > 0 else min)(r["ts"] for r in mine)
        extra = []
        for i, (lang, text) in enumerate(PROMPTS.items()):
            r = dict(mine[0])
            r.update(exchange_id=f"x-script-{lang}", account_id=ACCOUNT, prompt=text,
                     ts=edge + sign * timedelta(minutes=i + 1))
            extra.append(r)
        st.write_table(table, pa.Table.from_pylist(extra + rows, schema=t.schema))
    return st


def _rendered_by(page, cdp, lang: str) -> list[dict]:
    """Platform fonts Chromium used for the prompt element of ``lang``."""
    page.evaluate("""([lang, text]) => { const el = Array.from(document.querySelectorAll('pre.prompt'))
        .find(p => p.textContent.includes(text)); if (el) el.dataset.script = lang; }""", [lang, PROMPTS[lang][:12]])
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": f"pre.prompt[data-script='{lang}']"})["nodeId"]
    assert node, f"no prompt element shows the {lang} sample"
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


def _check_glyphs(page, fonts: dict[str, set[str]]) -> dict:
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    used = {}
    for lang, text in PROMPTS.items():
        need = sum(1 for ch in text if _in_script(ch, lang))
        got = _rendered_by(page, cdp, lang)
        used[lang] = got
        covering = sum(f["glyphCount"] for f in got if f["familyName"] in fonts[lang])
        # Arabic shaping joins some letter pairs into one glyph (lam-alef): a few fewer glyphs than letters
        assert covering >= (0.8 if lang == "ar" else 1.0) * need, (f"{lang} prompt: {need} {SCRIPT[lang]} characters but fonts covering {lang} "
                                  f"drew {covering} glyphs; fonts used: {got}")
    # Ideographs are one em wide; a box for a missing glyph (the monospace face's .notdef) is ~0.6 em.
    for lang in ("zh", "ja"):
        ratio = page.evaluate("""(lang) => { const el = document.querySelector(`pre.prompt[data-script='${lang}']`);
            const tn = el.firstChild; const txt = tn.textContent; const r = document.createRange();
            const i = txt.search(/[\\u4e00-\\u9fff]/); r.setStart(tn, i); r.setEnd(tn, i + 1);
            return r.getBoundingClientRect().width / parseFloat(getComputedStyle(el).fontSize); }""", lang)
        assert 0.9 <= ratio <= 1.1, f"{lang} ideograph is {ratio:.2f} em wide (a box, not a glyph?)"
    cdp.detach()
    return used


@pytest.mark.parametrize("width", [800])
def test_multilingual_prompts_render_as_glyphs(browser, live_server, multilingual, fonts, width):
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        browser_login(page, live_server, "ana")
        page.goto(f"{live_server}/accounts/{ACCOUNT}")
        used = _check_glyphs(page, fonts)
        assert any("CJK" in f["familyName"] for f in used["zh"]), used["zh"]
        page.locator("pre.prompt[data-script='zh']").scroll_into_view_if_needed()
        shot(page, f"scripts-account-{width}")
        page.goto(f"{live_server}/campaigns/{CAMPAIGN}")
        _check_glyphs(page, fonts)
        # nothing wider than the window at 800 px, whatever the script
        assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
        page.locator("pre.prompt[data-script='zh']").locator("xpath=ancestor::section").screenshot(
            path=str(shot(page, f"scripts-campaign-{width}").with_name(f"scripts-campaign-samples-{width}.png")))
        assert errors == [], errors
    finally:
        ctx.close()
