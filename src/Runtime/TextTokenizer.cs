using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;

namespace PrunerZero.Runtime;

/// <summary>
/// A checkpoint's tokenizer through Microsoft.ML.Tokenizers: `tokenizer.model` (SentencePiece, as LLaMA-1/2
/// ship it) or `tokenizer.json` (byte-level BPE). <see cref="Encode"/> adds the special tokens that
/// Hugging Face's tokenizer adds to one string (BOS once at the start for LLaMA), decided as transformers
/// decides it:
/// - LlamaTokenizer(Fast) (also when tokenizer_config.json names no class: AutoTokenizer then picks it for
///   model_type llama and mistral), CodeLlama and Gemma tokenizers: BOS if `add_bos_token` (default true),
///   EOS if `add_eos_token` (default false); the tokens are `bos_token` / `eos_token` of tokenizer_config.json.
/// - any other class (PreTrainedTokenizerFast, GPT2TokenizerFast, ...): the `post_processor` of
///   tokenizer.json (TemplateProcessing's `single` template, also inside a Sequence; ByteLevel or none adds
///   nothing), unless tokenizer_config.json sets `add_bos_token` / `add_eos_token` explicitly.
/// </summary>
public sealed class TextTokenizer
{
    public static readonly string[] Files =
        ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    readonly Tokenizer _tok;
    readonly int[] _prefix, _suffix;
    // tokenizer.json's `ignore_merges` (LLaMA-3): a pre-token found whole in the vocabulary is one token,
    // whatever the merges would make of it. Null when the model merges every pre-token.
    readonly (HfPreTokenizer Pre, Dictionary<string, int> Vocab, Dictionary<string, int> Special)? _ignoreMerges;
    /// <summary>The BOS id (null if the tokenizer has none), whether or not <see cref="Encode"/> adds it.</summary>
    public int? BosId { get; }
    public bool AddBos => _prefix.Length == 1 && _prefix[0] == BosId;
    public string Kind { get; }

    TextTokenizer(Tokenizer tok, int? bosId, int[] prefix, int[] suffix, string kind,
                  (HfPreTokenizer, Dictionary<string, int>, Dictionary<string, int>)? ignoreMerges = null)
    {
        _tok = tok;
        _ignoreMerges = ignoreMerges;
        BosId = bosId;
        _prefix = prefix;
        _suffix = suffix;
        Kind = kind;
    }

    static readonly string[] LlamaClasses = ["LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"];

    public static TextTokenizer Load(string dir, LlamaConfig? config = null)
    {
        Checkpoint.RequireDirectory(dir);
        string spm = Path.Combine(dir, "tokenizer.model"), json = Path.Combine(dir, "tokenizer.json");
        var tc = ReadJson(Path.Combine(dir, "tokenizer_config.json"));
        var stm = ReadJson(Path.Combine(dir, "special_tokens_map.json"));
        bool? addBos = Bool(tc, "add_bos_token"), addEos = Bool(tc, "add_eos_token");
        string? bosText = TokenText(tc?["bos_token"]) ?? TokenText(stm?["bos_token"]);
        string? eosText = TokenText(tc?["eos_token"]) ?? TokenText(stm?["eos_token"]);
        string klass = tc?["tokenizer_class"] is JsonValue kv ? kv.GetValue<string>() : "";

        if (File.Exists(spm))
        {
            SentencePieceTokenizer tok;
            try
            {
                using var s = File.OpenRead(spm);
                tok = LlamaTokenizer.Create(s, addBeginOfSentence: false, addEndOfSentence: false);
            }
            catch (Exception e) when (e is not PrunerZeroException)
            {
                throw new PrunerZeroException($"{spm}: cannot read SentencePiece model ({e.Message})");
            }
            // LlamaTokenizer's defaults: bos "<s>", eos "</s>", add_bos_token true, add_eos_token false.
            int? bos = Piece(tok, bosText ?? "<s>") ?? config?.BosTokenId ?? tok.BeginningOfSentenceId;
            int? eos = Piece(tok, eosText ?? "</s>") ?? config?.EosTokenId ?? tok.EndOfSentenceId;
            return new TextTokenizer(tok, bos, Specials(addBos ?? true, bos, "BOS", spm), Specials(addEos ?? false, eos, "EOS", spm), "sentencepiece");
        }
        if (File.Exists(json)) return FromTokenizerJson(json, config, klass, addBos, addEos, bosText, eosText);
        throw new PrunerZeroException($"{dir}: no tokenizer (expected tokenizer.model or tokenizer.json)");

        static int? Piece(SentencePieceTokenizer tok, string piece) =>
            tok.Vocabulary.TryGetValue(piece, out int id) ? id : null;
    }

    static int[] Specials(bool add, int? id, string what, string path) =>
        !add ? [] : id is int i ? [i] : throw new PrunerZeroException($"{path}: the tokenizer adds {what} but has no {what} token");

    static bool? Bool(JsonObject? o, string key) => o?[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    /// <summary>A special token as tokenizer_config.json writes it: a string or an AddedToken object.</summary>
    static string? TokenText(JsonNode? n) => n switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o => o["content"]?.GetValue<string>(),
        _ => null,
    };

    static JsonObject? ReadJson(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not valid JSON ({e.Message})"); }
    }

    static TextTokenizer FromTokenizerJson(string path, LlamaConfig? config, string klass, bool? addBos, bool? addEos,
                                           string? bosText, string? eosText)
    {
        var root = ReadJson(path) ?? throw new PrunerZeroException($"{path}: empty");
        var model = root["model"] as JsonObject ?? throw new PrunerZeroException($"{path}: no model section");
        string type = model["type"]?.GetValue<string>() ?? "BPE";
        if (type != "BPE") throw new PrunerZeroException($"{path}: tokenizer model type '{type}' is not supported (BPE only)");
        if (model["byte_fallback"] is JsonValue bf && bf.GetValue<bool>())
            throw new PrunerZeroException($"{path}: SentencePiece-style BPE (byte_fallback) in tokenizer.json is not supported; put the checkpoint's tokenizer.model beside it");
        if (root["normalizer"] is JsonObject norm)
            throw new PrunerZeroException($"{path}: tokenizer normalizer '{norm["type"]}' is not supported");
        if (!IsByteLevel(root["pre_tokenizer"]))
            throw new PrunerZeroException($"{path}: a byte-level BPE tokenizer needs a ByteLevel step in its pre_tokenizer");

        var vocabObj = model["vocab"] as JsonObject ?? throw new PrunerZeroException($"{path}: no model.vocab");
        var vocab = vocabObj.Select(kv => new KeyValuePair<string, int>(kv.Key, kv.Value!.GetValue<int>())).ToList();
        var merges = (model["merges"] as JsonArray ?? new JsonArray()).Select(m => m switch
        {
            JsonArray pair => pair[0]!.GetValue<string>() + " " + pair[1]!.GetValue<string>(),
            _ => m!.GetValue<string>(),
        }).ToList();
        // Added tokens: the special ones are cut out of the text before pre-tokenization, as HF does.
        var special = new Dictionary<string, int>();
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
                if (t["special"] is JsonValue sp && sp.GetValue<bool>()) special[t["content"]!.GetValue<string>()] = t["id"]!.GetValue<int>();

        var pre = HfPreTokenizer.FromJson(root["pre_tokenizer"], special.Keys, path);
        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            PreTokenizer = pre,
            SpecialTokens = special.Count > 0 ? special : null,
        };
        Tokenizer tok;
        try { tok = BpeTokenizer.Create(options); }
        catch (Exception e) { throw new PrunerZeroException($"{path}: cannot build BPE tokenizer ({e.Message})"); }

        int? Id(string? text) => text is null ? null
            : special.TryGetValue(text, out var i) ? i
            : vocabObj[text] is JsonValue v ? v.GetValue<int>() : null;
        bool llama = klass.Length == 0 || LlamaClasses.Contains(klass);
        if (llama) { bosText ??= "<s>"; eosText ??= "</s>"; } // LlamaTokenizerFast's defaults
        int? bos = Id(bosText) ?? config?.BosTokenId;
        int? eos = Id(eosText) ?? config?.EosTokenId;

        int[] prefix, suffix;
        if (llama)
        {
            prefix = Specials(addBos ?? true, bos, "BOS", path);
            suffix = Specials(addEos ?? false, eos, "EOS", path);
        }
        else
        {
            (prefix, suffix) = Template(root["post_processor"], path);
            if (addBos is bool ab) prefix = Specials(ab, bos, "BOS", path);
            if (addEos is bool ae) suffix = Specials(ae, eos, "EOS", path);
        }
        bool ignoreMerges = model["ignore_merges"] is JsonValue im && im.GetValue<bool>();
        return new TextTokenizer(tok, bos, prefix, suffix, "bpe",
            ignoreMerges ? (pre, vocab.ToDictionary(kv => kv.Key, kv => kv.Value), special) : null);
    }

    static bool IsByteLevel(JsonNode? pre) => pre?["type"]?.GetValue<string>() switch
    {
        "ByteLevel" => true,
        "Sequence" => (pre["pretokenizers"] as JsonArray)?.Any(IsByteLevel) == true,
        _ => false,
    };

    /// <summary>The special tokens the post_processor puts around one sequence: TemplateProcessing's `single`.</summary>
    static (int[] Prefix, int[] Suffix) Template(JsonNode? post, string path)
    {
        switch (post?["type"]?.GetValue<string>())
        {
            case null:
            case "ByteLevel":
                return ([], []);
            case "Sequence":
                var parts = (post["processors"] as JsonArray ?? []).Select(p => Template(p, path)).ToList();
                return ([.. parts.SelectMany(p => p.Prefix)], [.. parts.SelectMany(p => p.Suffix)]);
            case "TemplateProcessing":
                var prefix = new List<int>();
                var suffix = new List<int>();
                bool seenA = false;
                foreach (var item in post["single"] as JsonArray ?? [])
                {
                    if (item?["Sequence"] is not null) { seenA = true; continue; }
                    string id = item?["SpecialToken"]?["id"]?.GetValue<string>()
                        ?? throw new PrunerZeroException($"{path}: TemplateProcessing item {item?.ToJsonString()} is not a SpecialToken or Sequence");
                    var ids = post["special_tokens"]?[id]?["ids"] as JsonArray
                        ?? throw new PrunerZeroException($"{path}: TemplateProcessing names special token '{id}' without ids");
                    (seenA ? suffix : prefix).AddRange(ids.Select(x => x!.GetValue<int>()));
                }
                return ([.. prefix], [.. suffix]);
            default:
                throw new PrunerZeroException($"{path}: post_processor '{post["type"]}' is not supported (TemplateProcessing, ByteLevel, Sequence)");
        }
    }

    /// <summary>Token ids of one string with the special tokens HF's tokenizer adds (BOS once at the start for LLaMA).</summary>
    public int[] Encode(string text) => [.. _prefix, .. EncodeNoSpecial(text), .. _suffix];

    /// <summary>Token ids of one string without special tokens (add_special_tokens=False).</summary>
    public int[] EncodeNoSpecial(string text)
    {
        if (_ignoreMerges is not var (pre, vocab, special))
            return [.. _tok.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true)];
        var ids = new List<int>();
        foreach (var (offset, length) in pre.PreTokenize(text))
        {
            string piece = text.Substring(offset, length);
            if (special.TryGetValue(piece, out int sid)) ids.Add(sid);
            else if (vocab.TryGetValue(ByteLevel.Encode(System.Text.Encoding.UTF8.GetBytes(piece)), out int wid)) ids.Add(wid);
            else ids.AddRange(_tok.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
        }
        return [.. ids];
    }

    public string Decode(IEnumerable<int> ids) => _tok.Decode(ids) ?? "";
}
