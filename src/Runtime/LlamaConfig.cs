using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrunerZero.Runtime;

/// <summary>
/// The subset of a Hugging Face LlamaForCausalLM / MistralForCausalLM config.json that fixes the math.
/// Keys that would change the math and are not implemented are refused here, never ignored.
/// </summary>
public sealed record LlamaConfig
{
    public required string Architecture { get; init; }
    public required int HiddenSize { get; init; }         // C
    public required int IntermediateSize { get; init; }   // F
    public required int NumLayers { get; init; }          // L
    public required int NumHeads { get; init; }           // H
    public required int NumKvHeads { get; init; }         // KV
    public required int HeadDim { get; init; }            // D
    public required double RmsNormEps { get; init; }
    public required double RopeTheta { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required int VocabSize { get; init; }          // V
    public required bool TieWordEmbeddings { get; init; }
    public required string TorchDtype { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    /// <summary>Mistral's sliding window; exact as full attention while the window covers the sequence.</summary>
    public int? SlidingWindow { get; init; }

    public static readonly string[] SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM"];

    public long ParameterCount
    {
        get
        {
            long c = HiddenSize, f = IntermediateSize, v = VocabSize;
            long attn = c * (NumHeads * HeadDim) * 2 + c * (NumKvHeads * HeadDim) * 2;
            long block = attn + 3 * c * f + 2 * c;
            return v * c * (TieWordEmbeddings ? 1 : 2) + NumLayers * block + c;
        }
    }

    public static LlamaConfig Load(string path)
    {
        if (!File.Exists(path)) throw new PrunerZeroException($"config.json not found: {path}");
        JsonNode? root;
        try { root = JsonNode.Parse(PathSafety.ReadAllTextBounded(path, "config", PathSafety.MaxJsonBytes)); }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not valid JSON ({e.Message})"); }
        if (root is not JsonObject o) throw new PrunerZeroException($"{path}: expected a JSON object");
        try { return FromJson(o); }
        catch (PrunerZeroException e) { throw new PrunerZeroException($"{path}: {e.Template}"); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException)
        {
            throw new PrunerZeroException($"{path}: malformed config ({e.Message})");   // a value of the wrong JSON kind, a duplicate key
        }
    }

    public static LlamaConfig FromJson(JsonObject o)
    {
        string arch = o["architectures"] switch
        {
            null => "",
            JsonArray a when a.All(x => x is JsonValue xv && xv.GetValueKind() == JsonValueKind.String) => a.Count > 0 ? a[0]!.GetValue<string>() : "",
            var x => throw new PrunerZeroException($"key 'architectures' must be a list of strings, found {JsonTypes.Found(x)}"),
        };
        string modelType = Str(o, "model_type") ?? "";
        if (!SupportedArchitectures.Contains(arch) && modelType is not ("llama" or "mistral"))
            throw new PrunerZeroException($"architecture '{arch}' (model_type '{modelType}') is not supported; expected one of {string.Join(", ", SupportedArchitectures)}");

        // Keys that change the math: implemented or refused.
        if (o["rope_scaling"] is not (null or JsonObject))
            throw new PrunerZeroException($"key 'rope_scaling' must be an object or null, found {JsonTypes.Found(o["rope_scaling"])}");
        if (o["rope_scaling"] is JsonObject rs)
        {
            string type = Str(rs, "rope_type") ?? Str(rs, "type") ?? "?";
            if (type != "default")
                throw new PrunerZeroException($"rope_scaling of type '{type}' is not implemented (only plain RoPE); refusing rather than computing a different model");
        }
        if (Bool(o, "attention_bias") == true) throw new PrunerZeroException("attention_bias = true is not implemented");
        if (Bool(o, "mlp_bias") == true) throw new PrunerZeroException("mlp_bias = true is not implemented");
        string act = Str(o, "hidden_act") ?? "silu";
        if (act != "silu") throw new PrunerZeroException($"hidden_act '{act}' is not implemented (only silu, as LLaMA uses)");
        if (o["quantization_config"] is not null) throw new PrunerZeroException("quantized checkpoints (quantization_config) are not supported");

        int hidden = Int(o, "hidden_size");
        int heads = Int(o, "num_attention_heads");
        int kv = o.ContainsKey("num_key_value_heads") && o["num_key_value_heads"] is not null ? Int(o, "num_key_value_heads") : heads;
        int? givenHeadDim = OptInt(o, "head_dim");
        if (givenHeadDim is null && heads > 0 && hidden % heads != 0)
            throw new PrunerZeroException($"hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads}) and no head_dim is given");
        int headDim = givenHeadDim ?? hidden / Math.Max(heads, 1);
        var c = new LlamaConfig
        {
            Architecture = arch == "" ? (modelType == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM") : arch,
            HiddenSize = hidden,
            IntermediateSize = Int(o, "intermediate_size"),
            NumLayers = Int(o, "num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kv,
            HeadDim = headDim,
            RmsNormEps = OptDbl(o, "rms_norm_eps") ?? 1e-6,
            RopeTheta = OptDbl(o, "rope_theta") ?? 10000.0,
            MaxPositionEmbeddings = OptInt(o, "max_position_embeddings") ?? 2048,
            VocabSize = Int(o, "vocab_size"),
            TieWordEmbeddings = Bool(o, "tie_word_embeddings") ?? false,
            TorchDtype = Str(o, "torch_dtype") ?? Str(o, "dtype") ?? "float32",
            BosTokenId = OptInt(o, "bos_token_id"),
            EosTokenId = EosId(o),
            SlidingWindow = OptInt(o, "sliding_window"),
        };
        c.Validate();
        return c;
    }

    public void Validate()
    {
        if (HiddenSize <= 0 || IntermediateSize <= 0 || NumLayers <= 0 || NumHeads <= 0 || NumKvHeads <= 0 || VocabSize <= 0 || HeadDim <= 0)
            throw new PrunerZeroException("sizes must be positive (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size)");
        if (NumHeads % NumKvHeads != 0)
            throw new PrunerZeroException($"num_attention_heads ({NumHeads}) must be a multiple of num_key_value_heads ({NumKvHeads})");
        if (HeadDim % 2 != 0) throw new PrunerZeroException($"head dimension {HeadDim} must be even for rotary embeddings");
        // Numbers that no model has: refused here, not discovered as a NaN perplexity after the work.
        if (!(RmsNormEps > 0 && double.IsFinite(RmsNormEps) && RmsNormEps < 1))
            throw new PrunerZeroException($"rms_norm_eps must be a small positive number (0 < eps < 1), got {RmsNormEps}");
        if (!(RopeTheta > 1 && double.IsFinite(RopeTheta)))
            throw new PrunerZeroException($"rope_theta must be a finite number above 1, got {RopeTheta}");
        if (MaxPositionEmbeddings <= 0)
            throw new PrunerZeroException($"max_position_embeddings must be positive, got {MaxPositionEmbeddings}");
        if (SlidingWindow is <= 0)
            throw new PrunerZeroException($"sliding_window must be positive when given, got {SlidingWindow}");
        const int MaxDim = 1 << 20;
        if (HiddenSize > MaxDim || IntermediateSize > MaxDim || VocabSize > 1 << 24 || NumLayers > 10_000 || (long)NumHeads * HeadDim > MaxDim || (long)NumKvHeads * HeadDim > MaxDim)
            throw new PrunerZeroException($"implausible sizes (hidden_size {HiddenSize}, intermediate_size {IntermediateSize}, vocab_size {VocabSize}, num_hidden_layers {NumLayers}, heads {NumHeads} x {HeadDim})");
        if (NumKvHeads > NumHeads)
            throw new PrunerZeroException($"num_key_value_heads ({NumKvHeads}) cannot exceed num_attention_heads ({NumHeads})");
        if (BosTokenId is < 0 || BosTokenId >= VocabSize)
            throw new PrunerZeroException($"bos_token_id {BosTokenId} is outside the vocabulary (vocab_size {VocabSize})");
        if (EosTokenId is < 0 || EosTokenId >= VocabSize)
            throw new PrunerZeroException($"eos_token_id {EosTokenId} is outside the vocabulary (vocab_size {VocabSize})");
        if (TorchDtype is not ("float32" or "float16" or "bfloat16"))
            throw new PrunerZeroException($"torch_dtype '{TorchDtype}' is not supported (float32, float16, bfloat16)");
    }

    public JsonObject ToJson() => new()
    {
        ["architectures"] = new JsonArray(Architecture),
        ["model_type"] = Architecture == "MistralForCausalLM" ? "mistral" : "llama",
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumLayers,
        ["num_attention_heads"] = NumHeads,
        ["num_key_value_heads"] = NumKvHeads,
        ["head_dim"] = HeadDim,
        ["hidden_act"] = "silu",
        ["rms_norm_eps"] = RmsNormEps,
        ["rope_theta"] = RopeTheta,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["vocab_size"] = VocabSize,
        ["tie_word_embeddings"] = TieWordEmbeddings,
        ["torch_dtype"] = TorchDtype,
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["rope_scaling"] = null,
    };

    // Absent or null: not given. Present with the wrong JSON kind: refused, never read as "not given".
    static string? Str(JsonObject o, string k) => o[k] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var x => throw new PrunerZeroException($"key '{k}' must be a string, found {JsonTypes.Found(x)}"),
    };

    static bool? Bool(JsonObject o, string k) => o[k] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        var x => throw new PrunerZeroException($"key '{k}' must be true or false, found {JsonTypes.Found(x)}"),
    };

    static int Int(JsonObject o, string k) =>
        OptInt(o, k) ?? throw new PrunerZeroException($"missing integer key '{k}'");

    /// <summary>Absent or null: null. An integer (or a whole-valued number): it. Anything else: refused, naming what was found.</summary>
    static int? OptInt(JsonObject o, string k)
    {
        var n = o[k];
        if (n is null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        }
        throw new PrunerZeroException($"key '{k}' must be an integer, found {JsonTypes.Found(n)}");
    }

    static double? OptDbl(JsonObject o, string k)
    {
        var n = o[k];
        if (n is null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d)) return d;
        throw new PrunerZeroException($"key '{k}' must be a number, found {JsonTypes.Found(n)}");
    }

    /// <summary>eos_token_id: an integer, or (as generation configs and LLaMA-3 write it) a list of integers, the first taken.</summary>
    static int? EosId(JsonObject o)
    {
        if (o["eos_token_id"] is not JsonArray a) return OptInt(o, "eos_token_id");
        var ids = new List<int>();
        foreach (var x in a)
            if (x is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i)) ids.Add(i);
            else throw new PrunerZeroException($"key 'eos_token_id' must be an integer or a list of integers, found {JsonTypes.Found(a)}");
        return ids.Count > 0 ? ids[0] : null;
    }
}
