#:package Tokenizers.DotNet
#:package Tokenizers.DotNet.runtime.linux-x64
// Generates the tokenizer.json golden files (run by hand, never by the tests), with Hugging Face's own
// `tokenizers` (Rust 0.22, through Tokenizers.DotNet) on each tokenizer.json as shipped, post_processor
// included, i.e. what transformers' fast tokenizer gives with add_special_tokens=True:
//
//     dotnet run tests/PrunerZero.Runtime.Tests/golden/make_hf_golden.cs
//
// Tokenizers: tiny = models/pz-llama-tiny/tokenizer.json; digits = the same vocabulary with SmolLM's
// pre-tokenizer (Digits individual_digits + ByteLevel); llama3 = LLaMA-3's Split regex (Isolated) +
// ByteLevel without regex, and ignore_merges. Writes golden/hf/<name>.tokenizer.json for the variants,
// <name>.<corpus>.ids.gz (uint16 LE, gzip; c4 for tiny only) and adversarial.json (inputs as UTF-16 code units, ids).
// Lone surrogates, which the library refuses, are replaced by U+FFFD first.
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Tokenizers.DotNet;

string root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(AppContext.GetData("EntryPointFilePath") as string ?? ".")!, "..", "..", ".."));
if (!File.Exists(Path.Combine(root, "Pruner-Zero.sln"))) root = Directory.GetCurrentDirectory();
string outDir = Path.Combine(root, "tests", "PrunerZero.Runtime.Tests", "golden", "hf");
Directory.CreateDirectory(outDir);
string tinyPath = Path.Combine(root, "models", "pz-llama-tiny", "tokenizer.json");

JsonObject Variant(Action<JsonObject> edit)
{
    var o = JsonNode.Parse(File.ReadAllText(tinyPath))!.AsObject();
    edit(o);
    return o;
}
var variants = new Dictionary<string, JsonObject>
{
    ["digits"] = Variant(o => o["pre_tokenizer"] = JsonNode.Parse("""
        {"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}]}
        """)),
    ["llama3"] = Variant(o =>
    {
        o["pre_tokenizer"] = JsonNode.Parse("""
            {"type":"Sequence","pretokenizers":[
              {"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},
              {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}
            """);
        o["model"]!["ignore_merges"] = true;
    }),
};
var paths = new Dictionary<string, string> { ["tiny"] = tinyPath };
foreach (var (name, json) in variants)
{
    string p = Path.Combine(outDir, name + ".tokenizer.json");
    File.WriteAllText(p, json.ToJsonString());
    paths[name] = p;
}

string Fix(string s)
{
    var c = s.ToCharArray();
    for (int i = 0; i < c.Length; i++)
    {
        if (char.IsHighSurrogate(c[i]) && i + 1 < c.Length && char.IsLowSurrogate(c[i + 1])) { i++; continue; }
        if (char.IsSurrogate(c[i])) c[i] = '\uFFFD';
    }
    return new string(c);
}

var corpora = new Dictionary<string, string>
{
    ["c4"] = string.Join("\n\n", File.ReadLines(Path.Combine(root, "data", "c4", "c4-train.00000-of-01024.first1000.jsonl"))
        .Where(l => l.Trim().Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)),
    ["wikitest"] = File.ReadAllText(Path.Combine(root, "data", "wikitext-2-raw", "wiki.test.raw")),
};
var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "tests", "PrunerZero.Runtime.Tests", "golden", "spm", "adversarial.json")))
    .RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("utf16").EnumerateArray().Select(u => u.GetInt32()).ToArray()).ToList();
cases.Add([.. "<s>the</s> <s>".Select(ch => (int)ch)]);
cases.Add([.. "x<s>\n</s></s>".Select(ch => (int)ch)]);

var adversarial = new JsonArray();
foreach (var units in cases) adversarial.Add(new JsonObject { ["utf16"] = new JsonArray([.. units.Select(u => JsonValue.Create(u))]), ["ids"] = new JsonObject() });
foreach (var (name, path) in paths)
{
    var tok = new Tokenizer(path);
    foreach (var (cname, text) in corpora)
    {
        if (cname == "c4" && name != "tiny") continue;   // the variants on wiki.test.raw only, to keep the files small
        var ids = tok.Encode(Fix(text));
        using var gz = new GZipStream(File.Create(Path.Combine(outDir, $"{name}.{cname}.ids.gz")), CompressionLevel.SmallestSize);
        foreach (var id in ids) { gz.WriteByte((byte)(id & 0xFF)); gz.WriteByte(checked((byte)(id >> 8))); }
        Console.WriteLine($"{name} {cname}: {ids.Length} ids");
    }
    for (int i = 0; i < cases.Count; i++)
    {
        string s = new([.. cases[i].Select(u => (char)u)]);
        adversarial[i]!["ids"]![name] = new JsonArray([.. tok.Encode(Fix(s)).Select(id => JsonValue.Create((int)id))]);
    }
}
File.WriteAllText(Path.Combine(outDir, "adversarial.json"), new JsonObject { ["tokenizers"] = "0.22.2 (Tokenizers.DotNet 1.4.1)", ["cases"] = adversarial }.ToJsonString());
Console.WriteLine($"{cases.Count} adversarial cases");
