#!/usr/bin/python3
"""Generates the SentencePiece golden files the tests compare against (run by hand, never by the tests).

    apt-get install -y python3-sentencepiece        # Debian 12: sentencepiece 0.1.97
    /usr/bin/python3 tests/PrunerZero.Runtime.Tests/golden/make_spm_golden.py

Trains three small models on data/wikitext-2-raw/wiki.valid.raw and writes, under golden/spm/:
  <name>.model                  the model
  <name>.<corpus>.ids.gz        uint16 little-endian ids of the whole corpus text (no BOS/EOS)
  adversarial.json              inputs (UTF-16 code units) with every model's ids and decoded text
Corpora: c4 = the shipped C4 sample's `text` fields joined with "\n\n"; wikitest = wiki.test.raw as is.
Lone surrogates: Python cannot encode them to UTF-8; every one is replaced by U+FFFD before encoding,
as .NET's UTF-8 encoder (Encoding.UTF8) does, and the C# side encodes the raw UTF-16 input.
"""
import gzip, io, json, os, re, struct, sys
import sentencepiece as spm

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))
out = os.path.join(here, "spm")
os.makedirs(out, exist_ok=True)
train = os.path.join(root, "data", "wikitext-2-raw", "wiki.valid.raw")

common = dict(input=train, vocab_size=700, bos_id=1, eos_id=2, unk_id=0, pad_id=-1,
              num_threads=2, max_sentence_length=100000, minloglevel=2)
models = {
    # LLaMA's options (byte fallback, dummy prefix, no whitespace removal, digits split, identity).
    "llama_bpe": dict(model_type="bpe", byte_fallback=True, add_dummy_prefix=True,
                      remove_extra_whitespaces=False, split_digits=True,
                      normalization_rule_name="identity", allow_whitespace_only_pieces=True,
                      character_coverage=0.9995, user_defined_symbols=["<sep>"]),
    # sentencepiece's defaults: nmt_nfkc, remove_extra_whitespaces, no byte fallback (unknowns are <unk>).
    "default_bpe": dict(model_type="bpe", user_defined_symbols=["<sep>", "@@"]),
    # Unigram with defaults.
    "unigram": dict(model_type="unigram", user_defined_symbols=["<sep>"]),
}
for name, opts in models.items():
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(out, name), **common, **opts)
    os.remove(os.path.join(out, name + ".vocab"))

def c4():
    p = os.path.join(root, "data", "c4", "c4-train.00000-of-01024.first1000.jsonl")
    with open(p, encoding="utf-8") as f:
        return "\n\n".join(json.loads(l)["text"] for l in f if l.strip())

def wikitest():
    with open(os.path.join(root, "data", "wikitext-2-raw", "wiki.test.raw"), encoding="utf-8", newline="") as f:
        return f.read()

procs = {n: spm.SentencePieceProcessor(model_file=os.path.join(out, n + ".model")) for n in models}
for cname, text in [("c4", c4()), ("wikitest", wikitest())]:
    for n, sp in procs.items():
        ids = sp.encode(text)
        assert max(ids) < 65536
        with gzip.GzipFile(os.path.join(out, f"{n}.{cname}.ids.gz"), "wb", compresslevel=9, mtime=0) as g:
            g.write(struct.pack(f"<{len(ids)}H", *ids))
        print(cname, n, len(ids), "ids; decode round-trips:", sp.decode(ids) == text)

cases = []
for c in ["a", "o", "e", " ", "\n", "\t", "—", "😀", "0", "ab"]:
    for k in range(2, 10):
        cases.append(c * k)
for k in range(1, 9):
    cases.append("sh" + "o" * k)
    cases.append("the " + "l" * k + "y")
cases += ["", "shooo", "—", "…", "\u200b", "é", "ß", "中", "😀", "\u00a0", "\u3000", "ﬁ", "Ａ", "①", "\u0301",
          "e\u0301", "\ufeff", "\x00", "\x7f", "\ufffd", "—x", "x—", " — ", "\u2028",
          " ", "  ", "   ", "\t", "\n", "\r\n", "\r", " \t \n ", "a  b", "a   b   c", " leading", "trailing ",
          "  both  ", "\ttab\tsep", "line1\nline2\n\nline3", " \u00a0 ", "a\u00a0b", "a\u3000b", "\n\n\n x \n\n",
          "😀😃", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "a😀b", "👨\u200d👩\u200d👧", "🇩🇪🇫🇷", "𠀀𠀁", "\U0010ffff", "\U000e0001",
          "a\u0308\u0301", "Å", "A\u030a", "한국어", "ﾊﾝｶｸ ｶﾀｶﾅ", "㍻", "™", "½", "ｈｅｌｌｏ　ｗｏｒｌｄ", "ﬀ ﬁ ﬂ ﬃ ﬄ",
          "x² y₃", "Ⅻ", "ℌ", "…and…", "“quoted”", "‘single’", "«guillemets»", "µ", "Ω", "Å", "ǅ", "ſ",
          "\ud800", "a\udc00b", "\ud83d", "x\ude00\ud83dy", "\udfff\udfff",
          "<sep>", "a<sep>b", " <sep> ", "<sep><sep>", "@@@", "x@@y", "<s>", "</s>", "<unk>", "<0x41>", "▁", "▁▁x",
          "12345", "3.14159", "2024-01-01", "١٢٣", "٣.١٤", "1,000,000",
          "Hello, World!", "don't", "The quick brown fox jumps over the lazy dog.", "  The   quick  ",
          "ÀÉÎÕÜ àéîõü", "Привет, мир!", "مرحبا بالعالم", "नमस्ते दुनिया", "日本語のテキスト", "ไทย", "Ελληνικά",
          " = Valkyria Chronicles III = \n", "@-@ 1 @,@ 000 @.@ 5"]

def fix(s):  # what .NET's UTF-8 encoder makes of lone surrogates
    return re.sub("[\ud800-\udfff]", "\ufffd", s)

golden = {"sentencepiece": spm.__version__, "models": list(models), "cases": []}
for s in cases:
    units = list(struct.unpack(f"<{len(s.encode('utf-16-le', 'surrogatepass')) // 2}H", s.encode("utf-16-le", "surrogatepass")))
    e = {"utf16": units, "ids": {}, "decoded": {}}
    for n, sp in procs.items():
        ids = sp.encode(fix(s))
        e["ids"][n] = ids
        e["decoded"][n] = sp.decode(ids)
    golden["cases"].append(e)
with open(os.path.join(out, "adversarial.json"), "w", encoding="utf-8") as f:
    json.dump(golden, f, ensure_ascii=True, separators=(",", ":"))
print(len(cases), "adversarial cases")
