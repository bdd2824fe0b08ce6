using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrunerZero.Runtime;

/// <summary>The decoder families whose forward is implemented, each as its transformers modeling file computes it.</summary>
public enum ModelFamily { Llama, Mistral, Qwen2, Qwen3 }

/// <summary>
/// rope_scaling (transformers 4.x) or rope_parameters (5.x) of a config: the inverse-frequency rescaling of
/// modeling_rope_utils.py. Type "linear" (_compute_linear_scaling_rope_parameters: inv_freq / factor) or
/// "llama3" (_compute_llama3_parameters); plain RoPE is a null <see cref="LlamaConfig.RopeScaling"/>.
/// </summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 0, double HighFreqFactor = 0, int OriginalMaxPositions = 0);

/// <summary>
/// The subset of a Hugging Face LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM
/// config.json that fixes the math. Keys that would change the math and are not implemented are refused
/// here, never ignored.
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
    /// <summary>
    /// The sliding window in force (null: full causal attention everywhere): Mistral's sliding_window on every
    /// layer; Qwen2/Qwen3's only when use_sliding_window is true, on the layers <see cref="WindowOf"/> names.
    /// Llama has none (LlamaConfig has no such key).
    /// </summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Qwen2/Qwen3: config.layer_types as given (null: derived from max_window_layers as the config class does).</summary>
    public string[]? LayerTypes { get; init; }
    /// <summary>Qwen2/Qwen3 max_window_layers: layers from this index on slide when layer_types is not given.</summary>
    public int MaxWindowLayers { get; init; } = 28;
    /// <summary>Null: plain RoPE (rope_type "default").</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Bias on q_proj, k_proj, v_proj and o_proj (Llama's and Qwen3's attention_bias).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Bias on gate_proj, up_proj, down_proj (Llama's mlp_bias).</summary>
    public bool MlpBias { get; init; }

    public static readonly string[] SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"];
    static readonly string[] ModelTypes = ["llama", "mistral", "qwen2", "qwen3"];

    public ModelFamily Family => (ModelFamily)Array.IndexOf(SupportedArchitectures, Architecture) is var f && f >= 0 ? f
        : throw new PrunerZeroException($"architecture '{Architecture}' is not supported");

    public string ModelType => ModelTypes[(int)Family];

    /// <summary>Whether linear k carries a bias: Qwen2 on q/k/v always; attention_bias on q/k/v/o; mlp_bias on gate/up/down.</summary>
    public bool HasBias(LinearKind k) => k switch
    {
        LinearKind.Q or LinearKind.K or LinearKind.V => AttentionBias || Family == ModelFamily.Qwen2,
        LinearKind.O => AttentionBias,
        _ => MlpBias,
    };

    /// <summary>Qwen3: RMSNorm over head_dim on each query and key head (q_norm, k_norm) before RoPE.</summary>
    public bool QkNorm => Family == ModelFamily.Qwen3;

    /// <summary>The sliding window of layer i, or null for full causal attention (transformers' layer_types / sliding_window).</summary>
    public int? WindowOf(int layer) => Family switch
    {
        ModelFamily.Mistral => SlidingWindow,
        ModelFamily.Qwen2 or ModelFamily.Qwen3 when SlidingWindow is int w =>
            (LayerTypes is null ? layer >= MaxWindowLayers : LayerTypes[layer] == "sliding_attention") ? w : null,
        _ => null,
    };

    /// <summary>Parameters of one decoder block: the seven linears, their biases, the two norms, q_norm and k_norm.</summary>
    public long BlockParameterCount
    {
        get
        {
            long c = HiddenSize, f = IntermediateSize;
            long attn = c * (NumHeads * HeadDim) * 2 + c * (NumKvHeads * HeadDim) * 2;
            long extra = LinearKinds.All.Where(HasBias).Sum(k => k switch
            {
                LinearKind.Q => (long)NumHeads * HeadDim, LinearKind.K or LinearKind.V => (long)NumKvHeads * HeadDim,
                LinearKind.O or LinearKind.Down => c, _ => f,
            }) + (QkNorm ? 2L * HeadDim : 0);
            return attn + 3 * c * f + 2 * c + extra;
        }
    }

    public long ParameterCount => (long)VocabSize * HiddenSize * (TieWordEmbeddings ? 1 : 2) + NumLayers * BlockParameterCount + HiddenSize;

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
        // AutoModelForCausalLM picks the class by model_type; architectures names it too. Both must name a supported family, and the same one.
        string supported = string.Join(", ", SupportedArchitectures.Select((a, i) => $"{a} ({ModelTypes[i]})"));
        int byArch = Array.IndexOf(SupportedArchitectures, arch), byType = Array.IndexOf(ModelTypes, modelType);
        if ((arch != "" && byArch < 0) || (modelType != "" && byType < 0) || (arch == "" && modelType == ""))
            throw new PrunerZeroException($"architecture '{arch}' (model_type '{modelType}') is not supported; supported: {supported}");
        if (byArch >= 0 && byType >= 0 && byArch != byType)
            throw new PrunerZeroException($"architectures names {arch} but model_type is '{modelType}'; they must name the same family ({supported})");
        var family = (ModelFamily)(byArch >= 0 ? byArch : byType);
        bool qwen = family is ModelFamily.Qwen2 or ModelFamily.Qwen3;

        // Keys that change the math: implemented or refused.
        var (rope, ropeTheta) = Rope(o);
        bool attnBias = Bool(o, "attention_bias") ?? false, mlpBias = Bool(o, "mlp_bias") ?? false;
        // Each family's modeling file reads attention_bias / mlp_bias or not; a true value that the family's class would not read is refused.
        if (attnBias && family is ModelFamily.Mistral or ModelFamily.Qwen2)
            throw new PrunerZeroException($"attention_bias = true is not read by {SupportedArchitectures[(int)family]} (its attention has {(family == ModelFamily.Qwen2 ? "a bias on q/k/v_proj only" : "no bias")}); refusing a config that does not match the model");
        if (mlpBias && family != ModelFamily.Llama)
            throw new PrunerZeroException($"mlp_bias = true is not read by {SupportedArchitectures[(int)family]} (its MLP has no bias)");
        string act = Str(o, "hidden_act") ?? "silu";
        if (act != "silu") throw new PrunerZeroException($"hidden_act '{act}' is not implemented (only silu, as these families use)");
        if (o["quantization_config"] is not null) throw new PrunerZeroException("quantized checkpoints (quantization_config) are not supported");

        int hidden = Int(o, "hidden_size");
        int heads = Int(o, "num_attention_heads");
        int kv = o.ContainsKey("num_key_value_heads") && o["num_key_value_heads"] is not null ? Int(o, "num_key_value_heads") : heads;
        // Qwen3Config's head_dim defaults to 128; the others derive it from hidden_size when absent.
        int? givenHeadDim = OptInt(o, "head_dim") ?? (family == ModelFamily.Qwen3 ? 128 : null);
        if (givenHeadDim is null && heads > 0 && hidden % heads != 0)
            throw new PrunerZeroException($"hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads}) and no head_dim is given");
        int headDim = givenHeadDim ?? hidden / Math.Max(heads, 1);
        int layers = Int(o, "num_hidden_layers");

        // Sliding window. Mistral: sliding_window (null: none) on every layer. Qwen2/Qwen3 (configuration_qwen2/3.py):
        // sliding_window only when use_sliding_window, on the layers layer_types names, or from max_window_layers on.
        int? window = family switch
        {
            ModelFamily.Mistral => OptInt(o, "sliding_window"),
            ModelFamily.Qwen2 or ModelFamily.Qwen3 when Bool(o, "use_sliding_window") == true => OptInt(o, "sliding_window") ?? 4096,
            _ => null,
        };
        string[]? layerTypes = null;
        if (qwen && o["layer_types"] is not null)
        {
            if (o["layer_types"] is not JsonArray lt || lt.Count != layers
                || lt.Any(x => x is not JsonValue v || !v.TryGetValue<string>(out var t) || t is not ("full_attention" or "sliding_attention")))
                throw new PrunerZeroException($"key 'layer_types' must list \"full_attention\" or \"sliding_attention\" for each of the {layers} layers, found {JsonTypes.Found(o["layer_types"])}");
            layerTypes = [.. lt.Select(x => x!.GetValue<string>())];
        }

        var c = new LlamaConfig
        {
            Architecture = SupportedArchitectures[(int)family],
            HiddenSize = hidden,
            IntermediateSize = Int(o, "intermediate_size"),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kv,
            HeadDim = headDim,
            RmsNormEps = OptDbl(o, "rms_norm_eps") ?? 1e-6,
            RopeTheta = ropeTheta,
            RopeScaling = rope,
            MaxPositionEmbeddings = OptInt(o, "max_position_embeddings") ?? family switch
            {
                ModelFamily.Llama => 2048,
                ModelFamily.Mistral => 4096 * 32,
                _ => 32768,
            },
            VocabSize = Int(o, "vocab_size"),
            TieWordEmbeddings = Bool(o, "tie_word_embeddings") ?? false,
            TorchDtype = Str(o, "torch_dtype") ?? Str(o, "dtype") ?? "float32",
            BosTokenId = OptInt(o, "bos_token_id"),
            EosTokenId = EosId(o),
            SlidingWindow = window,
            LayerTypes = layerTypes,
            MaxWindowLayers = qwen ? OptInt(o, "max_window_layers") ?? 28 : 28,
            AttentionBias = attnBias,
            MlpBias = mlpBias,
        };
        c.Validate();
        return c;
    }

    /// <summary>
    /// RoPE's inverse-frequency rescaling and theta, from rope_parameters (transformers 5, theta inside) or
    /// rope_scaling with rope_theta (transformers 4), with the keys modeling_rope_utils.py reads for each type.
    /// </summary>
    static (RopeScaling? Scaling, double Theta) Rope(JsonObject o)
    {
        foreach (var key in new[] { "rope_scaling", "rope_parameters" })
            if (o[key] is not (null or JsonObject))
                throw new PrunerZeroException($"key '{key}' must be an object or null, found {JsonTypes.Found(o[key])}");
        var p = o["rope_parameters"] as JsonObject ?? o["rope_scaling"] as JsonObject;
        double theta = (p is null ? null : OptDbl(p, "rope_theta")) ?? OptDbl(o, "rope_theta") ?? 10000.0;
        double partial = (p is null ? null : OptDbl(p, "partial_rotary_factor")) ?? OptDbl(o, "partial_rotary_factor") ?? 1.0;
        if (partial != 1.0) throw new PrunerZeroException($"partial_rotary_factor {partial} is not implemented (RoPE over the whole head only)");
        if (p is null) return (null, theta);
        string type = Str(p, "rope_type") ?? Str(p, "type") ?? throw new PrunerZeroException("rope_scaling has no 'rope_type' (or 'type')");
        double Need(string k) => OptDbl(p, k) ?? throw new PrunerZeroException($"rope_scaling of type '{type}' needs '{k}'");
        switch (type)
        {
            case "default":
                return (null, theta);
            case "linear":
                double lf = Need("factor");
                if (!(lf > 0 && double.IsFinite(lf))) throw new PrunerZeroException($"rope_scaling factor must be positive, got {lf}");
                return (new RopeScaling("linear", lf), theta);
            case "llama3":
                var r = new RopeScaling("llama3", Need("factor"), Need("low_freq_factor"), Need("high_freq_factor"),
                    OptInt(p, "original_max_position_embeddings") ?? throw new PrunerZeroException("rope_scaling of type 'llama3' needs 'original_max_position_embeddings'"));
                if (!(r.Factor > 0 && double.IsFinite(r.Factor) && r.LowFreqFactor > 0 && r.HighFreqFactor > r.LowFreqFactor && double.IsFinite(r.HighFreqFactor) && r.OriginalMaxPositions > 0))
                    throw new PrunerZeroException($"rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0; got {r.Factor}, {r.LowFreqFactor}, {r.HighFreqFactor}, {r.OriginalMaxPositions}");
                return (r, theta);
            default:
                throw new PrunerZeroException($"rope_scaling of type '{type}' is not implemented (implemented: default, linear, llama3); refusing rather than computing a different model");
        }
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
        if (LayerTypes is not null && LayerTypes.Length != NumLayers)
            throw new PrunerZeroException($"layer_types names {LayerTypes.Length} layers, the model has {NumLayers}");
        _ = Family;   // the architecture is one of the supported ones
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

    /// <summary>The config in Hugging Face's keys (transformers 4 layout: rope_theta and rope_scaling at the top), per family.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = ModelType,
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
        };
        switch (Family)
        {
            case ModelFamily.Llama:
                o["attention_bias"] = AttentionBias;
                o["mlp_bias"] = MlpBias;
                break;
            case ModelFamily.Mistral:
                o["sliding_window"] = SlidingWindow;
                break;
            default:
                if (Family == ModelFamily.Qwen3) o["attention_bias"] = AttentionBias;
                o["use_sliding_window"] = SlidingWindow is not null;
                o["sliding_window"] = SlidingWindow;
                o["max_window_layers"] = MaxWindowLayers;
                if (LayerTypes is not null) o["layer_types"] = new JsonArray([.. LayerTypes.Select(t => (JsonNode)t)]);
                break;
        }
        // Last, as before for Llama (whose config.json bytes stay as they were).
        o["rope_scaling"] = RopeScaling switch
        {
            null => null,
            { Type: "linear" } r => new JsonObject { ["rope_type"] = "linear", ["factor"] = r.Factor },
            var r => new JsonObject
            {
                ["rope_type"] = r.Type, ["factor"] = r.Factor, ["low_freq_factor"] = r.LowFreqFactor,
                ["high_freq_factor"] = r.HighFreqFactor, ["original_max_position_embeddings"] = r.OriginalMaxPositions,
            },
        };
        return o;
    }

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
