using System.Text.Json;
using System.Text.Json.Nodes;
using PrunerZero.Runtime.Tokenization;

namespace PrunerZero.Runtime;

/// <summary>
/// A checkpoint's tokenizer: `tokenizer.model` (SentencePiece, as LLaMA-1/2 ship it) is encoded by this
/// project's <see cref="SentencePieceEncoder"/> (sentencepiece's algorithms on the parsed model, checked id for
/// id against sentencepiece), `tokenizer.json` by Hugging Face's own `tokenizers` library (Rust, through
/// Tokenizers.DotNet) with the file's post_processor, truncation and padding taken out, so that this class
/// alone decides the special tokens around a string. <see cref="Encode"/> adds the special tokens that
/// Hugging Face's tokenizer adds to one string (BOS once at the start for LLaMA), decided as transformers
/// decides it:
/// - LlamaTokenizer(Fast) (also when tokenizer_config.json names no class and the model is a llama or mistral one (or
///   unknown): AutoTokenizer then picks it for model_type llama and mistral), CodeLlama and Gemma tokenizers: BOS if `add_bos_token` (default true),
///   EOS if `add_eos_token` (default false); the tokens are `bos_token` / `eos_token` of tokenizer_config.json.
/// - any other class (PreTrainedTokenizerFast as Llama-3 ships, Qwen2Tokenizer as Qwen2/2.5/3 ship, GPT2TokenizerFast, ...;
///   also no class for a qwen2/qwen3 model): the `post_processor` of
///   tokenizer.json (TemplateProcessing's `single` template, also inside a Sequence; ByteLevel or none adds
///   nothing), unless tokenizer_config.json sets `add_bos_token` / `add_eos_token` explicitly.
/// </summary>
public sealed class TextTokenizer
{
    public static readonly string[] Files =
        ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    readonly Func<string, int[]> _encode;
    readonly Func<IEnumerable<int>, string> _decode;
    readonly int[] _prefix, _suffix;
    /// <summary>The BOS id (null if the tokenizer has none), whether or not <see cref="Encode"/> adds it.</summary>
    public int? BosId { get; }
    public bool AddBos => _prefix.Length == 1 && _prefix[0] == BosId;
    public string Kind { get; }

    TextTokenizer(Func<string, int[]> encode, Func<IEnumerable<int>, string> decode, int? bosId, int[] prefix, int[] suffix, string kind)
    {
        _encode = encode;
        _decode = decode;
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
        string tcPath = Path.Combine(dir, "tokenizer_config.json"), stmPath = Path.Combine(dir, "special_tokens_map.json");
        var tc = ReadJson(tcPath);
        var stm = ReadJson(stmPath);
        // Every value read is type-checked (JsonTypes): a string "false" for add_bos_token is refused, never read as "not given".
        bool? addBos = JsonTypes.Bool(tc, "add_bos_token", tcPath), addEos = JsonTypes.Bool(tc, "add_eos_token", tcPath);
        // Both files are checked, also where tokenizer_config.json's value wins.
        string? stmBos = JsonTypes.Token(stm, "bos_token", stmPath), stmEos = JsonTypes.Token(stm, "eos_token", stmPath);
        string? bosText = JsonTypes.Token(tc, "bos_token", tcPath) ?? stmBos;
        string? eosText = JsonTypes.Token(tc, "eos_token", tcPath) ?? stmEos;
        string klass = JsonTypes.String(tc, "tokenizer_class", tcPath) ?? "";

        if (File.Exists(spm))
        {
            var tok = SentencePieceEncoder.Load(spm);
            // LlamaTokenizer's defaults: bos "<s>", eos "</s>", add_bos_token true, add_eos_token false.
            int? bos = tok.PieceId(bosText ?? "<s>") ?? config?.BosTokenId ?? tok.BosId;
            int? eos = tok.PieceId(eosText ?? "</s>") ?? config?.EosTokenId ?? tok.EosId;
            return new TextTokenizer(tok.Encode, tok.Decode, bos, Specials(addBos ?? true, bos, "BOS", spm), Specials(addEos ?? false, eos, "EOS", spm), "sentencepiece");
        }
        if (File.Exists(json))
        {
            try { return FromTokenizerJson(json, config, klass, addBos, addEos, bosText, eosText); }
            catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or NullReferenceException)
            {
                // A value of the wrong JSON type deep inside (added_tokens, post_processor): named, never an internal failure.
                throw new PrunerZeroException($"{json}: malformed tokenizer.json ({e.Message})");
            }
        }
        throw new PrunerZeroException($"{dir}: no tokenizer (expected tokenizer.model or tokenizer.json)");
    }

    static int[] Specials(bool add, int? id, string what, string path) =>
        !add ? [] : id is int i ? [i] : throw new PrunerZeroException($"{path}: the tokenizer adds {what} but has no {what} token");

    static JsonObject? ReadJson(string path)
    {
        if (!Path.Exists(path)) return null;
        JsonNode? node;
        try { node = JsonNode.Parse(PathSafety.ReadAllTextBounded(path, "tokenizer file", PathSafety.MaxJsonBytes)); }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not valid JSON ({e.Message})"); }
        return node as JsonObject ?? throw new PrunerZeroException($"{path}: must be a JSON object, found {JsonTypes.Found(node)}");
    }

    static TextTokenizer FromTokenizerJson(string path, LlamaConfig? config, string klass, bool? addBos, bool? addEos,
                                           string? bosText, string? eosText)
    {
        var root = ReadJson(path) ?? throw new PrunerZeroException($"{path}: not a tokenizer.json (not a JSON object)");
        if (root["model"] is not JsonObject model) throw new PrunerZeroException($"{path}: not a tokenizer.json (no model section)");
        var vocabObj = model["vocab"] as JsonObject;
        var special = new Dictionary<string, int>();
        if (root["added_tokens"] is JsonArray added)
            foreach (var t in added.OfType<JsonObject>())
                if (t["content"] is JsonValue c && t["id"] is JsonValue i && i.TryGetValue<int>(out int id)) special[c.GetValue<string>()] = id;
        var tok = HfTokenizer.Load(root, path);

        int? Id(string? text) => text is null ? null
            : special.TryGetValue(text, out var i) ? i
            : vocabObj?[text] is JsonValue v && v.TryGetValue<int>(out int vi) ? vi : null;
        // No tokenizer_class: AutoTokenizer takes the model_type's tokenizer: LlamaTokenizerFast for llama and mistral,
        // Qwen2TokenizerFast (a PreTrainedTokenizerFast: the post_processor decides, Qwen's adds nothing) for qwen2 and qwen3.
        bool llama = klass.Length == 0 ? config?.Family is null or ModelFamily.Llama or ModelFamily.Mistral : LlamaClasses.Contains(klass);
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
        string kind = model["type"] is JsonValue tv && tv.TryGetValue<string>(out var ts) ? ts.ToLowerInvariant() : "bpe";
        return new TextTokenizer(tok.Encode, tok.Decode, bos, prefix, suffix, kind);
    }

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

    /// <summary>Token ids of one string without special tokens (add_special_tokens=False); special tokens
    /// written in the text are still encoded as themselves.</summary>
    public int[] EncodeNoSpecial(string text) => _encode(text);

    /// <summary>Text of token ids: sentencepiece's decoding, or tokenizers' decode (special tokens skipped).</summary>
    public string Decode(IEnumerable<int> ids) => _decode(ids);
}
