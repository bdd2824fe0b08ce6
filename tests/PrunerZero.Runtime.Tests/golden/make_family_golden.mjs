// Generates the Llama-3 and Qwen tokenizer.json golden files (run by hand, never by the tests) with Hugging Face's
// own `tokenizers` through its Node binding (npm package `tokenizers` 0.23.2: the Rust library HF publishes, built
// independently of Tokenizers.DotNet, which the product uses), on each tokenizer.json as shipped, post_processor
// included, i.e. what transformers' fast tokenizer gives with add_special_tokens=True:
//
//     cd /tmp && npm install tokenizers@0.23.2 && NODE_PATH=/tmp/node_modules node <repo>/tests/PrunerZero.Runtime.Tests/golden/make_family_golden.mjs
//
// Tokenizers, from models/pz-llama-tiny/tokenizer.json's vocabulary and merges:
//   llama3full: Llama-3.x's layout: the Split regex (Isolated) + ByteLevel without regex, ignore_merges, added
//               <|begin_of_text|> / <|end_of_text|>, post_processor Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)];
//   qwen:       Qwen2/2.5/3's layout: NFC normalizer, Qwen's Split regex (single digits), ByteLevel without regex,
//               added <|endoftext|>, <|im_start|>, <|im_end|>, post_processor ByteLevel (no BOS).
// Writes golden/hf/<name>.tokenizer.json, <name>.tokenizer_config.json, <name>.wikitest.ids.gz and qwen.c4.ids.gz (uint16 LE, gzip),
// and adds the two tokenizers' ids (plus new NFC / special-token cases for every tokenizer) to adversarial.json,
// checking the ids already there (tiny, digits, llama3 from Tokenizers.DotNet) against this library: any difference is printed.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';
import zlib from 'zlib';
import { fileURLToPath } from 'url';
const require = createRequire(import.meta.url);
const { Tokenizer } = require('tokenizers');

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..', '..');
const out = path.join(here, 'hf');
const tiny = JSON.parse(fs.readFileSync(path.join(root, 'models', 'pz-llama-tiny', 'tokenizer.json'), 'utf8'));
const added = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
const byteLevel = (prefix, regex) => ({ type: 'ByteLevel', add_prefix_space: prefix, trim_offsets: false, use_regex: regex });

const llama3Regex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const qwenRegex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const split = (regex) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });

const llama3full = structuredClone(tiny);
llama3full.added_tokens = [added(4096, '<|begin_of_text|>'), added(4097, '<|end_of_text|>')];
llama3full.pre_tokenizer = { type: 'Sequence', pretokenizers: [split(llama3Regex), byteLevel(false, false)] };
llama3full.model.ignore_merges = true;
const bos = '<|begin_of_text|>';
llama3full.post_processor = {
  type: 'Sequence', processors: [byteLevel(true, true), {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [bos]: { id: bos, ids: [4096], tokens: [bos] } },
  }],
};
llama3full.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };

const qwen = structuredClone(tiny);
qwen.added_tokens = [added(4096, '<|endoftext|>'), added(4097, '<|im_start|>'), added(4098, '<|im_end|>')];
qwen.normalizer = { type: 'NFC' };
qwen.pre_tokenizer = { type: 'Sequence', pretokenizers: [split(qwenRegex), byteLevel(false, false)] };
qwen.post_processor = byteLevel(false, false);
qwen.decoder = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
qwen.model.ignore_merges = false;

const configs = {
  llama3full: { bos_token: bos, eos_token: '<|end_of_text|>', clean_up_tokenization_spaces: true, model_max_length: 131072, tokenizer_class: 'PreTrainedTokenizerFast' },
  qwen: { add_prefix_space: false, bos_token: null, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>', errors: 'replace', model_max_length: 131072, split_special_tokens: false, tokenizer_class: 'Qwen2Tokenizer' },
};
const paths = { tiny: path.join(root, 'models', 'pz-llama-tiny', 'tokenizer.json'), digits: path.join(out, 'digits.tokenizer.json'), llama3: path.join(out, 'llama3.tokenizer.json') };
for (const [name, json] of [['llama3full', llama3full], ['qwen', qwen]]) {
  paths[name] = path.join(out, `${name}.tokenizer.json`);
  fs.writeFileSync(paths[name], JSON.stringify(json));
  fs.writeFileSync(path.join(out, `${name}.tokenizer_config.json`), JSON.stringify(configs[name], null, 2) + '\n');
}

// Lone surrogates, which the library refuses, become U+FFFD first (as in make_hf_golden.cs).
const fix = (s) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
const corpora = {
  wikitest: fs.readFileSync(path.join(root, 'data', 'wikitext-2-raw', 'wiki.test.raw'), 'utf8'),
  c4: fs.readFileSync(path.join(root, 'data', 'c4', 'c4-train.00000-of-01024.first1000.jsonl'), 'utf8').split('\n')
    .filter((l) => l.trim().length > 0).map((l) => JSON.parse(l).text).join('\n\n'),
};
const adv = JSON.parse(fs.readFileSync(path.join(out, 'adversarial.json'), 'utf8'));
const extra = [
  'e\u0301te\u0301 cafe\u0301', '\u212B\u2126 \u1100\u1161\u11A8', 'A\u030A\u0301 o\u0308\u0304', '\uFB01 \u00C5 \u0041\u030A',
  '12345 67 8.9', 'x<|im_start|>user\nhi<|im_end|>\n<|endoftext|>', '<|begin_of_text|>Hello<|end_of_text|> <|begin_of_text|>',
  '\u0915\u094D\u0937 \u0D15\u0D4D\u200D \u00E9\u0301', "  it's   I'M  we'll\r\n\r\n  x",
];
for (const s of extra) adv.cases.push({ utf16: [...s].flatMap((c) => { const u = []; for (let i = 0; i < c.length; i++) u.push(c.charCodeAt(i)); return u; }), ids: {} });

const tokenizers = {};
for (const [name, p] of Object.entries(paths)) tokenizers[name] = Tokenizer.fromFile(p);
const encode = async (name, s) => Array.from((await tokenizers[name].encode(fix(s), undefined, { addSpecialTokens: true })).getIds());

for (const name of ['llama3full', 'qwen'])
  for (const [cname, text] of Object.entries(corpora)) {
    if (cname === 'c4' && name !== 'qwen') continue;   // c4 (accented text, where NFC matters) for qwen only, to keep the files small
    const ids = await encode(name, text);
    const buf = Buffer.alloc(ids.length * 2);
    ids.forEach((id, i) => buf.writeUInt16LE(id, 2 * i));
    fs.writeFileSync(path.join(out, `${name}.${cname}.ids.gz`), zlib.gzipSync(buf, { level: 9 }));
    console.log(`${name} ${cname}: ${ids.length} ids`);
  }
let differences = 0;
for (const c of adv.cases) {
  const s = String.fromCharCode(...c.utf16);
  for (const name of Object.keys(paths)) {
    const ids = await encode(name, s);
    if (c.ids[name] && JSON.stringify(c.ids[name]) !== JSON.stringify(ids)) { differences++; console.log(`differs from the stored ${name} ids: ${JSON.stringify(s)}`); }
    c.ids[name] = ids;
  }
}
adv.tokenizers = '0.22.2 (Tokenizers.DotNet 1.4.1) for tiny, digits, llama3; 0.23.2 (npm tokenizers) for llama3full, qwen and the cases after the first 207, and checked equal on the others';
fs.writeFileSync(path.join(out, 'adversarial.json'), JSON.stringify(adv));
console.log(`${adv.cases.length} adversarial cases; ${differences} differences from the stored ids`);
