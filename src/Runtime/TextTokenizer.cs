using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace PrunerZero.Runtime;

/// <summary>
/// A checkpoint's tokenizer through Microsoft.ML.Tokenizers: `tokenizer.model` (SentencePiece, as LLaMA-1/2
/// ship it) or `tokenizer.json` (byte-level BPE). Text is encoded without special tokens and BOS is put
/// once at the start, as the HF LLaMA tokenizer does for one string.
/// </summary>
public sealed class TextTokenizer
{
    public static readonly string[] Files =
        ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    // GPT-2's pre-tokenizer pattern, which HF's ByteLevel pre-tokenizer uses when use_regex is true.
    const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    readonly Tokenizer _tok;
    public int? BosId { get; }
    public bool AddBos { get; }
    public string Kind { get; }

    TextTokenizer(Tokenizer tok, int? bosId, bool addBos, string kind)
    {
        _tok = tok;
        BosId = bosId;
        AddBos = addBos && bosId.HasValue;
        Kind = kind;
    }

    public static TextTokenizer Load(string dir, LlamaConfig? config = null)
    {
        Checkpoint.RequireDirectory(dir);
        string spm = Path.Combine(dir, "tokenizer.model"), json = Path.Combine(dir, "tokenizer.json");
        var tc = ReadJson(Path.Combine(dir, "tokenizer_config.json"));
        bool addBos = tc?["add_bos_token"] is JsonValue ab && ab.TryGetValue<bool>(out var b) ? b : true;

        if (File.Exists(spm))
        {
            Tokenizer tok;
            try
            {
                using var s = File.OpenRead(spm);
                tok = LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
            }
            catch (Exception e) when (e is not PrunerZeroException)
            {
                throw new PrunerZeroException($"{spm}: cannot read SentencePiece model ({e.Message})");
            }
            int? bos = config?.BosTokenId ?? ((SentencePieceTokenizer)tok).BeginningOfSentenceId;
            return new TextTokenizer(tok, bos, addBos, "sentencepiece");
        }
        if (File.Exists(json)) return FromTokenizerJson(json, config, addBos);
        throw new PrunerZeroException($"{dir}: no tokenizer (expected tokenizer.model or tokenizer.json)");
    }

    static JsonObject? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not valid JSON ({e.Message})"); }
    }

    static TextTokenizer FromTokenizerJson(string path, LlamaConfig? config, bool addBos)
    {
        var root = ReadJson(path) ?? throw new PrunerZeroException($"{path}: empty");
        var model = root["model"] as JsonObject ?? throw new PrunerZeroException($"{path}: no model section");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE") throw new PrunerZeroException($"{path}: tokenizer model type '{type}' is not supported (BPE only)");
        if (model["byte_fallback"] is JsonValue bf && bf.GetValue<bool>())
            throw new PrunerZeroException($"{path}: SentencePiece-style BPE (byte_fallback) in tokenizer.json is not supported; put the checkpoint's tokenizer.model beside it");
        if (root["normalizer"] is JsonObject norm)
            throw new PrunerZeroException($"{path}: tokenizer normalizer '{norm["type"]}' is not supported");

        // Pre-tokenizer: ByteLevel (GPT-2 regex) or Sequence[Split(regex), ByteLevel(use_regex=false)].
        string pattern = PreTokenizerPattern(root["pre_tokenizer"], path);

        var vocab = (model["vocab"] as JsonObject ?? throw new PrunerZeroException($"{path}: no model.vocab"))
            .Select(kv => new KeyValuePair<string, int>(kv.Key, kv.Value!.GetValue<int>())).ToList();
        var merges = (model["merges"] as JsonArray ?? new JsonArray()).Select(m => m switch
        {
            JsonArray pair => pair[0]!.GetValue<string>() + " " + pair[1]!.GetValue<string>(),
            _ => m!.GetValue<string>(),
        }).ToList();
        var special = new Dictionary<string, int>();
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
                if (t["special"] is JsonValue sp && sp.GetValue<bool>()) special[t["content"]!.GetValue<string>()] = t["id"]!.GetValue<int>();

        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), special.Count > 0 ? special : null),
            SpecialTokens = special.Count > 0 ? special : null,
        };
        Tokenizer tok;
        try { tok = BpeTokenizer.Create(options); }
        catch (Exception e) { throw new PrunerZeroException($"{path}: cannot build BPE tokenizer ({e.Message})"); }

        int? bos = config?.BosTokenId;
        if (bos is null && ReadJson(Path.Combine(Path.GetDirectoryName(path)!, "tokenizer_config.json"))?["bos_token"] is JsonNode bt)
        {
            string? s = bt is JsonValue ? bt.GetValue<string>() : bt["content"]?.GetValue<string>();
            if (s != null && special.TryGetValue(s, out var id)) bos = id;
        }
        return new TextTokenizer(tok, bos, addBos, "bpe");
    }

    static string PreTokenizerPattern(JsonNode? pre, string path)
    {
        if (pre is not JsonObject p) throw new PrunerZeroException($"{path}: a byte-level BPE tokenizer needs a pre_tokenizer");
        string type = p["type"]?.GetValue<string>() ?? "";
        if (type == "ByteLevel")
        {
            if (p["add_prefix_space"] is JsonValue aps && aps.GetValue<bool>())
                throw new PrunerZeroException($"{path}: ByteLevel add_prefix_space = true is not supported");
            return Gpt2Pattern;
        }
        if (type == "Sequence" && p["pretokenizers"] is JsonArray seq && seq.Count == 2
            && seq[0]?["type"]?.GetValue<string>() == "Split" && seq[1]?["type"]?.GetValue<string>() == "ByteLevel"
            && seq[0]?["pattern"]?["Regex"] is JsonValue rx)
            return rx.GetValue<string>();
        throw new PrunerZeroException($"{path}: pre_tokenizer '{type}' is not supported (ByteLevel, or Split+ByteLevel)");
    }

    /// <summary>Token ids of one string, BOS once at the start when the tokenizer adds it.</summary>
    public int[] Encode(string text)
    {
        var ids = _tok.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        if (!AddBos) return ids.ToArray();
        var result = new int[ids.Count + 1];
        result[0] = BosId!.Value;
        for (int i = 0; i < ids.Count; i++) result[i + 1] = ids[i];
        return result;
    }

    public string Decode(IEnumerable<int> ids) => _tok.Decode(ids) ?? "";
}
