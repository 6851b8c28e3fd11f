"""Identity generators: ids, e-mails, countries, IPs, ASNs, client stacks, payment fingerprints.

Attacker and ordinary accounts are drawn from these same functions; only the parameters differ
(a campaign may concentrate on a few /24s or reuse cards — behaviour a detector may use). The
ids themselves are uniform random strings, so nothing about an id says who made it.

IP addresses and the ASN→prefix mapping are synthetic (consistent within a world, not the real
internet routing table); ASN numbers and names are real so analysts recognise cloud vs ISP ranges.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)
_LOWER = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


def _fixed_width(chars: np.ndarray, prefix: bytes) -> pa.StringArray:
    n, w = chars.shape
    p = len(prefix)
    out = np.empty((n, p + w), dtype=np.uint8)
    if p:
        out[:, :p] = np.frombuffer(prefix, dtype=np.uint8)
    out[:, p:] = chars
    width = p + w
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())).cast(pa.string())


def hex_ids(rng: np.random.Generator, n: int, nbytes: int, prefix: str = "") -> pa.StringArray:
    """n random hex ids, built as one Arrow buffer (no Python string per id)."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    return _fixed_width(chars, prefix.encode())


def alnum_ids(rng: np.random.Generator, n: int, width: int, prefix: str = "", lower: bool = False) -> pa.StringArray:
    table = _LOWER if lower else _ALNUM
    return _fixed_width(table[rng.integers(0, len(table), size=(n, width))], prefix.encode())


def keyed_hash(*parts) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).hexdigest()


# ---------------------------------------------------------------------------------------------- countries
COUNTRY_MIX = {"US": 0.28, "IN": 0.09, "GB": 0.05, "DE": 0.05, "FR": 0.04, "BR": 0.04, "JP": 0.04, "CA": 0.04,
               "KR": 0.03, "SG": 0.03, "AU": 0.02, "NL": 0.02, "ES": 0.02, "IT": 0.02, "MX": 0.02, "ID": 0.02,
               "VN": 0.02, "HK": 0.02, "TW": 0.02, "PL": 0.015, "TR": 0.015, "IL": 0.01, "SE": 0.01, "CH": 0.01,
               "NG": 0.01, "ZA": 0.01, "AR": 0.01, "UA": 0.01, "CN": 0.01, "RU": 0.01}
#: UTC offset of each country a world may name (a world naming any other is an error, not silently UTC)
TZ_HOURS = {"BE": 1, "AT": 1, "DK": 1, "FI": 2, "NO": 1, "PT": 0, "IE": 0, "NZ": 12, "PH": 8, "TH": 7, "MY": 8,
            "PK": 5, "BD": 6, "EG": 2, "KE": 3, "CL": -4, "CO": -5, "PE": -5, "AE": 4, "SA": 3, "CZ": 1, "RO": 2,
            "US": -6, "IN": 5.5, "GB": 0, "DE": 1, "FR": 1, "BR": -3, "JP": 9, "CA": -5, "KR": 9, "SG": 8, "AU": 10,
            "NL": 1, "ES": 1, "IT": 1, "MX": -6, "ID": 7, "VN": 7, "HK": 8, "TW": 8, "PL": 1, "TR": 3, "IL": 2,
            "SE": 1, "CH": 1, "NG": 1, "ZA": 2, "AR": -3, "UA": 2, "CN": 8, "RU": 3}

# ---------------------------------------------------------------------------------------------- ASNs
#: (asn, name, kind, country)
ASNS = [
    (16509, "AMAZON-02", "datacenter", "US"), (14618, "AMAZON-AES", "datacenter", "US"),
    (15169, "GOOGLE", "datacenter", "US"), (396982, "GOOGLE-CLOUD-PLATFORM", "datacenter", "US"),
    (8075, "MICROSOFT-CORP", "datacenter", "US"), (16276, "OVH", "datacenter", "FR"),
    (24940, "HETZNER-AS", "datacenter", "DE"), (14061, "DIGITALOCEAN-ASN", "datacenter", "US"),
    (63949, "AKAMAI-LINODE", "datacenter", "US"), (20473, "AS-VULTR", "datacenter", "US"),
    (45102, "ALIBABA-CN-NET", "datacenter", "SG"), (132203, "TENCENT-NET-AP", "datacenter", "HK"),
    (31898, "ORACLE-BMC", "datacenter", "US"), (9009, "M247", "datacenter", "GB"),
    (212238, "DATACAMP", "datacenter", "GB"), (51167, "CONTABO", "datacenter", "DE"),
    (7922, "COMCAST-7922", "residential", "US"), (701, "UUNET", "residential", "US"),
    (7018, "ATT-INTERNET4", "residential", "US"), (20115, "CHARTER-20115", "residential", "US"),
    (3320, "DTAG", "residential", "DE"), (2856, "BT-UK-AS", "residential", "GB"),
    (5089, "NTL", "residential", "GB"), (3215, "FRANCE-TELECOM", "residential", "FR"),
    (4134, "CHINANET-BACKBONE", "residential", "CN"), (4837, "CHINA169", "residential", "CN"),
    (17676, "GIGAINFRA", "residential", "JP"), (4766, "KIXS-AS-KR", "residential", "KR"),
    (24560, "AIRTELBROADBAND", "residential", "IN"), (28573, "CLARO", "residential", "BR"),
    (12389, "ROSTELECOM", "residential", "RU"), (812, "ROGERS", "residential", "CA"),
    (7545, "TPG-INTERNET", "residential", "AU"), (9506, "SINGTEL-FIBRE", "residential", "SG"),
    (4760, "HKTIMS-AP", "residential", "HK"), (3462, "HINET", "residential", "TW"),
    (1136, "KPN", "residential", "NL"), (3352, "TELEFONICA", "residential", "ES"),
    (3269, "ASN-IBSNAZ", "residential", "IT"), (8151, "UNINET", "residential", "MX"),
    (7713, "TELKOMNET", "residential", "ID"), (45899, "VNPT", "residential", "VN"),
    (5617, "TPNET", "residential", "PL"), (9121, "TTNET", "residential", "TR"),
    (21928, "T-MOBILE-AS21928", "mobile", "US"), (6167, "CELLCO", "mobile", "US"),
    (55836, "RELIANCEJIO", "mobile", "IN"), (9808, "CMNET", "mobile", "CN"),
    (3, "MIT-GATEWAYS", "campus", "US"), (25, "UCB", "campus", "US"), (32, "STANFORD", "campus", "US"),
    (786, "JANET", "campus", "GB"), (680, "DFN", "campus", "DE"), (2200, "RENATER", "campus", "FR"),
    (4538, "ERX-CERNET-BKB", "campus", "CN"), (2907, "SINET-AS", "campus", "JP"),
]
_ASN_ARR = np.array([a[0] for a in ASNS], dtype=np.int64)
_ASN_KIND = np.array([a[2] for a in ASNS])
_ASN_COUNTRY = np.array([a[3] for a in ASNS])
_RESERVED_FIRST = {0, 10, 100, 127, 169, 172, 192, 198, 203, 224}


def _asn_blocks(asn: int, k: int = 6) -> list[tuple[int, int]]:
    """Synthetic but stable /16 blocks for an ASN."""
    h = hashlib.blake2b(str(asn).encode(), digest_size=32).digest()
    out = []
    for i in range(k):
        a = 11 + h[2 * i] % 212
        while a in _RESERVED_FIRST:
            a += 1
        out.append((a, h[2 * i + 1]))
    return out


_BLOCKS = {a[0]: _asn_blocks(a[0]) for a in ASNS}


def asn_countries(asns: np.ndarray) -> np.ndarray:
    """Country of each ASN (from the table; '' for ASNs given by number only)."""
    table = dict(zip(_ASN_ARR.tolist(), _ASN_COUNTRY.tolist(), strict=True))
    return np.array([table.get(int(a), "") for a in asns])


def asns_of(kind: str, country: str | None = None, only: list[int] | None = None) -> np.ndarray:
    if only:
        return np.array(only, dtype=np.int64)
    m = _ASN_KIND == kind
    if country is not None and (m & (_ASN_COUNTRY == country)).any():
        m = m & (_ASN_COUNTRY == country)
    return _ASN_ARR[m]


def make_ips(rng: np.random.Generator, n: int, asn_choices: np.ndarray, prefixes_24: int | None = None
             ) -> tuple[list[str], np.ndarray]:
    """n IPv4 addresses (text) and their ASNs; with prefixes_24 they crowd into that many /24s."""
    for a in asn_choices:
        if int(a) not in _BLOCKS:
            _BLOCKS[int(a)] = _asn_blocks(int(a))
    if prefixes_24:
        p_asn = rng.choice(asn_choices, size=prefixes_24)
        p_blk = rng.integers(0, 6, size=prefixes_24)
        p_c = rng.integers(0, 256, size=prefixes_24)
        which = rng.integers(0, prefixes_24, size=n)
        asn = p_asn[which]
        blk = p_blk[which]
        c = p_c[which]
    else:
        asn = rng.choice(asn_choices, size=n)
        blk = rng.integers(0, 6, size=n)
        c = rng.integers(0, 256, size=n)
    d = rng.integers(1, 255, size=n)
    ips = []
    for a, b, cc, dd in zip(asn.tolist(), blk.tolist(), c.tolist(), d.tolist(), strict=True):
        o1, o2 = _BLOCKS[a][b]
        ips.append(f"{o1}.{o2}.{cc}.{dd}")
    return ips, asn.astype(np.int64)


# ---------------------------------------------------------------------------------------------- clients
#: name → (user-agent template, sdk_name, versions, weight in the general population)
CLIENT_STACKS: dict[str, tuple[str, str, list[str], float]] = {
    "openai-python": ("OpenAI/Python {v}", "openai-python", ["1.55.3", "1.58.1", "1.61.0", "1.68.2", "1.93.0", "2.6.1"], 0.30),
    "openai-python-async": ("AsyncOpenAI/Python {v}", "openai-python", ["1.58.1", "1.68.2", "2.6.1"], 0.07),
    "openai-node": ("OpenAI/JS {v}", "openai-node", ["4.77.0", "4.85.1", "5.10.2", "6.1.0"], 0.12),
    "anthropic-python": ("Anthropic/Python {v}", "anthropic-python", ["0.42.0", "0.49.0", "0.57.1", "0.69.0"], 0.12),
    "anthropic-ts": ("Anthropic/JS {v}", "anthropic-typescript", ["0.33.1", "0.39.0", "0.52.0"], 0.05),
    "httpx": ("python-httpx/{v}", "httpx", ["0.27.0", "0.27.2", "0.28.1"], 0.06),
    "requests": ("python-requests/{v}", "requests", ["2.31.0", "2.32.3", "2.32.5"], 0.06),
    "curl": ("curl/{v}", "curl", ["7.81.0", "8.5.0", "8.11.1"], 0.03),
    "go-http": ("Go-http-client/{v}", "go", ["1.1", "2.0"], 0.03),
    "langchain": ("langchain-openai/{v} OpenAI/Python 1.68.2", "openai-python", ["0.2.14", "0.3.9"], 0.05),
    "litellm": ("litellm/{v}", "litellm", ["1.55.8", "1.61.20", "1.74.3"], 0.04),
    "browser-ext": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/{v} Safari/537.36", "fetch",
                    ["131.0.0.0", "133.0.0.0", "138.0.0.0"], 0.02),
    "java-okhttp": ("okhttp/{v}", "okhttp", ["4.12.0", "5.0.0"], 0.02),
    "dotnet": ("OpenAI/.NET {v}", "openai-dotnet", ["2.1.0", "2.2.0"], 0.01),
    # popular open-source tools; their users are thousands of unrelated accounts
    "tool-quillcode": ("QuillCode/{v} (cli) OpenAI/JS 5.10.2", "openai-node", ["0.19.4", "0.20.1", "0.21.0"], 0.01),
    "tool-harbor-agent": ("HarborAgent/{v} anthropic-sdk-ts", "anthropic-typescript", ["2.3.0", "2.4.1"], 0.01),
}
_TLS_FAMILY = {"openai-python": "py", "openai-python-async": "py", "anthropic-python": "py", "httpx": "py",
               "requests": "py", "langchain": "py", "litellm": "py", "openai-node": "node", "anthropic-ts": "node",
               "tool-quillcode": "node", "tool-harbor-agent": "node", "curl": "curl", "go-http": "go",
               "browser-ext": "chrome", "java-okhttp": "java", "dotnet": "dotnet"}


def ja4_for(family: str, variant: int = 0) -> str:
    h = hashlib.sha256(f"{family}|{variant}".encode()).hexdigest()
    alpn = "h2" if family in ("chrome", "go", "node") else "h1"
    return f"t13d{15 + variant % 4:02d}{10 + variant % 7:02d}{alpn}_{h[:12]}_{h[12:24]}"


def header_fp_for(stack: str, variant: int = 0) -> str:
    return hashlib.sha256(f"hdr|{stack}|{variant}".encode()).hexdigest()[:16]


def client_table(rng: np.random.Generator, n: int, stacks: dict[str, float], custom_share: float, custom_salt: str,
                 extra: dict[str, tuple[str, str, list[str], float, str]] | None = None) -> dict[str, list]:
    """Per-account client fields. A 'custom' client keeps a real stack's user agent but its own TLS/header order.

    ``extra`` adds a world's own stacks (name → user agent template, sdk, versions, weight, TLS family):
    a tool or framework whose user agent nobody built into this table.
    """
    table = {**CLIENT_STACKS, **{k: v[:4] for k, v in (extra or {}).items()}}
    family = {**_TLS_FAMILY, **{k: v[4] for k, v in (extra or {}).items()}}
    mix = stacks or {k: v[3] for k, v in CLIENT_STACKS.items()}
    names = list(mix)
    unknown = [s for s in names if s not in table]
    if unknown:
        from distillguard.errors import ConfigError

        raise ConfigError(f"unknown client stack(s) {unknown}; choose from {sorted(table)}", source="client.stacks")
    w = np.array([mix[k] for k in names], dtype=float)
    pick = rng.choice(len(names), size=n, p=w / w.sum())
    custom = rng.random(n) < custom_share
    out = {"user_agent": [], "sdk_name": [], "sdk_version": [], "tls_ja4": [], "header_order_fp": []}
    custom_variant = int(hashlib.blake2b(custom_salt.encode(), digest_size=4).hexdigest(), 16) % 1000 + 7
    for i in range(n):
        name = names[pick[i]]
        ua, sdk, versions, _ = table[name]
        v = versions[int(rng.integers(0, len(versions)))]
        fam = family[name]
        tls_var = int(rng.integers(0, 3)) if fam == "py" else 0  # OpenSSL builds differ a little
        out["user_agent"].append(ua.format(v=v))
        out["sdk_name"].append(sdk)
        out["sdk_version"].append(v)
        if custom[i]:
            out["tls_ja4"].append(ja4_for(fam, custom_variant))
            out["header_order_fp"].append(header_fp_for(name, custom_variant))
        else:
            out["tls_ja4"].append(ja4_for(fam, tls_var))
            out["header_order_fp"].append(header_fp_for(name))
    return out


# ---------------------------------------------------------------------------------------------- e-mail
FIRST = ("james mary wei li jun min anna maria jose luis carlos ana sofia liam noah emma olivia aiden priya rahul "
         "arjun ananya yuki haruto sakura minjun jiwoo seoyeon hao yan ying xin chen lucas mateo lea hannah felix "
         "jonas lukas elena ivan olga dmitri fatima omar ali aisha mohammed nguyen thanh linh sarah david michael "
         "daniel laura paul marco giulia pierre camille tom kate ben alex sam chris jordan taylor ravi neha kenji "
         "tomas eva piotr kasia ahmet zeynep").split()
LAST = ("smith johnson brown garcia miller davis rodriguez martinez wang li zhang liu chen yang zhao huang zhou wu "
        "kim lee park choi jung sato suzuki takahashi tanaka patel sharma singh kumar gupta nguyen tran pham muller "
        "schmidt schneider fischer weber martin bernard dubois rossi russo ferrari silva santos oliveira souza "
        "ivanov smirnov kowalski nowak yilmaz kaya cohen levi andersson johansson jansen devries lopez gonzalez "
        "hernandez perez sanchez ramirez torres white harris clark lewis walker hall young king wright").split()
WORDS = ("pixel river cloud stone tiger maple lunar delta echo nova orbit cedar ember frost quartz raven sol vapor "
         "wolf zen byte code data dev ml ai neural vector tensor async lambda kernel stack crypto quant alpha beta "
         "gamma sigma omega flux spark nimbus atlas falcon panda koala otter lynx bison heron").split()
CONSUMER_DOMAINS = {"gmail.com": 0.45, "outlook.com": 0.1, "hotmail.com": 0.06, "yahoo.com": 0.06, "icloud.com": 0.05,
                    "proton.me": 0.04, "qq.com": 0.03, "163.com": 0.03, "126.com": 0.01, "gmx.de": 0.02,
                    "yandex.ru": 0.02, "naver.com": 0.02, "mail.ru": 0.01, "foxmail.com": 0.02, "aol.com": 0.01,
                    "fastmail.com": 0.01, "web.de": 0.02, "orange.fr": 0.01, "libero.it": 0.01, "hey.com": 0.01}
DISPOSABLE_DOMAINS = ["mailnesia.com", "sharklasers.com", "guerrillamail.com", "tempmail.dev", "yopmail.com",
                      "dropmail.me", "maildrop.cc", "10minutemail.net", "inboxkitten.com", "tmpmail.org"]
_CORP_SYL = "ver tex lum ion nex ora cal zen tri via qua sol arc mon gen syn flo kai neo dyn ax bri".split()
_TLDS = [".com", ".io", ".ai", ".co", ".dev", ".tech", ".net"]
_UNI_FMT = ["{a}{b}.edu", "u{a}.edu", "{a}-{b}.ac.uk", "{a}{b}.edu.cn", "uni-{a}{b}.de", "{a}.ac.jp", "{a}{b}.edu.sg",
            "{a}{b}.ac.kr", "{a}tech.edu", "{a}{b}.edu.au"]
EMAIL_PATTERNS = ("firstlast", "first_digits", "handle", "random", "student_id", "stem_seq")


def corporate_domain(rng: np.random.Generator) -> str:
    s = "".join(_CORP_SYL[int(i)] for i in rng.integers(0, len(_CORP_SYL), size=int(rng.integers(2, 4))))
    return s + _TLDS[int(rng.integers(0, len(_TLDS)))]


def university_domain(rng: np.random.Generator) -> str:
    a = _CORP_SYL[int(rng.integers(0, len(_CORP_SYL)))] + LAST[int(rng.integers(0, len(LAST)))][:4]
    b = _CORP_SYL[int(rng.integers(0, len(_CORP_SYL)))]
    return _UNI_FMT[int(rng.integers(0, len(_UNI_FMT)))].format(a=a, b=b)


def email_domains(rng: np.random.Generator, n: int, how, org_of: np.ndarray | None = None) -> list[str]:
    if isinstance(how, list):
        return [how[int(i)] for i in rng.integers(0, len(how), size=n)]
    cons = list(CONSUMER_DOMAINS)
    cw = np.array(list(CONSUMER_DOMAINS.values()))
    cw = cw / cw.sum()
    if how == "consumer":
        return [cons[int(i)] for i in rng.choice(len(cons), size=n, p=cw)]
    if how == "disposable":
        return [DISPOSABLE_DOMAINS[int(i)] for i in rng.integers(0, len(DISPOSABLE_DOMAINS), size=n)]
    if how == "corporate":
        return [corporate_domain(rng) for _ in range(n)]
    if how == "university":
        return [university_domain(rng) for _ in range(n)]
    if how == "org":
        per_org: dict[int, str] = {}
        keys = org_of if org_of is not None else np.zeros(n, dtype=np.int64)
        return [per_org.setdefault(int(k), corporate_domain(rng)) for k in keys]
    # mixed: the general population
    kind = rng.random(n)
    out = []
    for k in kind:
        if k < 0.72:
            out.append(cons[int(rng.choice(len(cons), p=cw))])
        elif k < 0.92:
            out.append(corporate_domain(rng))
        elif k < 0.985:
            out.append(university_domain(rng))
        else:
            out.append(DISPOSABLE_DOMAINS[int(rng.integers(0, len(DISPOSABLE_DOMAINS)))])
    return out


def email_locals(rng: np.random.Generator, n: int, patterns: dict[str, float]) -> list[str]:
    names = list(patterns)
    w = np.array([patterns[k] for k in names], dtype=float)
    pick = rng.choice(len(names), size=n, p=w / w.sum())
    stem = WORDS[int(rng.integers(0, len(WORDS)))] + WORDS[int(rng.integers(0, len(WORDS)))]
    seq = int(rng.integers(100, 5000))
    sid = int(rng.integers(2019, 2026)) * 10000 + int(rng.integers(0, 3000))
    out = []
    for p in pick:
        pat = names[p]
        f = FIRST[int(rng.integers(0, len(FIRST)))]
        last = LAST[int(rng.integers(0, len(LAST)))]
        if pat == "firstlast":
            sep = (".", "", "_", "-")[int(rng.integers(0, 4))]
            out.append(f"{f}{sep}{last}" if rng.random() < 0.8 else f"{f[0]}{sep}{last}")
        elif pat == "first_digits":
            out.append(f"{f}{int(rng.integers(1, 9999))}" if rng.random() < 0.7 else f"{f}{last[:3]}{int(rng.integers(70, 100))}")
        elif pat == "handle":
            out.append(WORDS[int(rng.integers(0, len(WORDS)))] + ("_" if rng.random() < 0.3 else "")
                       + WORDS[int(rng.integers(0, len(WORDS)))] + (str(int(rng.integers(1, 999))) if rng.random() < 0.5 else ""))
        elif pat == "random":
            out.append("".join(chr(int(c)) for c in _LOWER[rng.integers(0, len(_LOWER), size=int(rng.integers(8, 13)))]))
        elif pat == "student_id":
            sid += int(rng.integers(1, 40))
            out.append(("s" if rng.random() < 0.5 else "") + str(sid))
        else:  # stem_seq: one stem, increasing numbers, as account-creation scripts do
            seq += int(rng.integers(1, 4))
            out.append(f"{stem}{seq}")
    return out
