using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>
/// Random checkpoints with the exact shapes of real LLaMA-family models, for scale tests, benchmarks and
/// sizing a machine: Hugging Face layout, weights ~ N(0, 0.02²) with a few heavy input channels per linear
/// (columns ×<see cref="HeavyFactor"/>, as real LLMs have outlier features), norms 1, an untied head, and a
/// tokenizer copied from a shipped model. Every tensor is drawn from its own generator seeded by (seed,
/// name), so a checkpoint is the same for a seed whatever the layer count; tensors are made and written one
/// at a time (a 13.5 GB checkpoint never sits in memory), sharded above 5 GiB.
/// </summary>
public static class SyntheticCheckpoint
{
    public const float Std = 0.02f;
    public const int HeavyChannels = 4;
    public const float HeavyFactor = 10f;

    public sealed record Preset(string Name, string Architecture, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads,
        int Vocab, int MaxPositions, double RmsEps, double RopeTheta);

    public static readonly Preset[] Presets =
    [
        new("llama-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 2048, 1e-6, 10000),
        new("llama-2-13b", "LlamaForCausalLM", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5, 10000),
        new("llama-3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, 1e-5, 500000),
        new("mistral-7b", "MistralForCausalLM", 4096, 14336, 32, 32, 8, 32000, 32768, 1e-5, 1000000),
        new("tiny", "LlamaForCausalLM", 192, 512, 4, 6, 3, 4096, 256, 1e-5, 10000),
    ];

    public static Preset Find(string name) =>
        Presets.FirstOrDefault(p => p.Name == name.ToLowerInvariant())
        ?? throw new PrunerZeroException($"{UserError.P("preset")} must be one of {string.Join(", ", Presets.Select(p => p.Name))}; got '{name}'");

    /// <summary>Writes the checkpoint; <paramref name="tokenizerDir"/> gives the tokenizer files (its vocabulary must fit the preset's).</summary>
    public static LlamaConfig Write(Preset p, int? layers, string dtype, int seed, string outDir, string tokenizerDir, IProgress<string>? progress = null)
    {
        var scalar = dtype.ToLowerInvariant() switch
        {
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "f16" or "float16" => ScalarType.Float16,
            "f32" or "float32" => ScalarType.Float32,
            _ => throw new PrunerZeroException($"{UserError.P("dtype")} must be bf16, f16 or f32, got '{dtype}'"),
        };
        int n = layers ?? p.Layers;
        if (n <= 0) throw new PrunerZeroException($"{UserError.P("layers")} must be positive, got {n}");
        var tokCfg = LlamaConfig.Load(Path.Combine(Checkpoint.RequireDirectoryAnd(tokenizerDir), "config.json"));
        if (tokCfg.VocabSize > p.Vocab)
            throw new PrunerZeroException($"the tokenizer of {tokenizerDir} has {tokCfg.VocabSize} tokens, more than the preset's vocabulary {p.Vocab}");

        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(p.Architecture),
            ["model_type"] = p.Architecture == "MistralForCausalLM" ? "mistral" : "llama",
            ["hidden_size"] = p.Hidden, ["intermediate_size"] = p.Intermediate, ["num_hidden_layers"] = n,
            ["num_attention_heads"] = p.Heads, ["num_key_value_heads"] = p.KvHeads, ["head_dim"] = p.Hidden / p.Heads,
            ["hidden_act"] = "silu", ["rms_norm_eps"] = p.RmsEps, ["rope_theta"] = p.RopeTheta,
            ["max_position_embeddings"] = p.MaxPositions, ["vocab_size"] = p.Vocab, ["tie_word_embeddings"] = false,
            ["torch_dtype"] = scalar switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" },
            ["bos_token_id"] = tokCfg.BosTokenId, ["eos_token_id"] = tokCfg.EosTokenId,
            ["attention_bias"] = false, ["mlp_bias"] = false, ["rope_scaling"] = null,
            ["synthetic"] = $"prunerzero synth --preset {p.Name} --layers {n} --dtype {dtype} --seed {seed}",
        };
        if (p.Architecture == "MistralForCausalLM") config["sliding_window"] = null;
        var cfg = LlamaConfig.FromJson(config);

        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var file in TextTokenizer.Files.Append("generation_config.json"))
        {
            string src = Path.Combine(tokenizerDir, file);
            if (File.Exists(src)) File.Copy(src, Path.Combine(outDir, file), overwrite: true);
        }

        long c = p.Hidden, hd = (long)p.Heads * (p.Hidden / p.Heads), kvd = (long)p.KvHeads * (p.Hidden / p.Heads), f = p.Intermediate;
        var specs = new List<(string Name, long[] Shape, bool Linear)> { ("model.embed_tokens.weight", [p.Vocab, c], false) };
        for (int i = 0; i < n; i++)
        {
            string pre = $"model.layers.{i}.";
            specs.Add((pre + "input_layernorm.weight", [c], false));
            specs.Add((pre + "self_attn.q_proj.weight", [hd, c], true));
            specs.Add((pre + "self_attn.k_proj.weight", [kvd, c], true));
            specs.Add((pre + "self_attn.v_proj.weight", [kvd, c], true));
            specs.Add((pre + "self_attn.o_proj.weight", [c, hd], true));
            specs.Add((pre + "post_attention_layernorm.weight", [c], false));
            specs.Add((pre + "mlp.gate_proj.weight", [f, c], true));
            specs.Add((pre + "mlp.up_proj.weight", [f, c], true));
            specs.Add((pre + "mlp.down_proj.weight", [c, f], true));
        }
        specs.Add(("model.norm.weight", [c], false));
        specs.Add(("lm_head.weight", [p.Vocab, c], false));
        var linear = specs.ToDictionary(s => s.Name, s => s.Linear);
        int done = 0;
        SafeTensors.WriteCheckpoint(outDir, specs.Select(s => new TensorSpec(s.Name, SafeTensors.DTypeName(scalar), s.Shape)).ToList(), s =>
        {
            progress?.Report($"synth: tensor {++done}/{specs.Count} {s.Name}");
            return Tensor(s.Name, s.Shape, linear[s.Name], seed).to(scalar);
        }, new Dictionary<string, string> { ["synthetic"] = config["synthetic"]!.GetValue<string>() });
        return cfg;
    }

    /// <summary>One tensor, float32: norms are 1, others N(0, Std²) from a generator seeded by (seed, name); linears get heavy input columns.</summary>
    public static Tensor Tensor(string name, long[] shape, bool linear, int seed)
    {
        if (shape.Length == 1) return ones(shape, ScalarType.Float32);
        ulong key = Fnv(name) ^ ((ulong)(uint)seed * 0x9E3779B97F4A7C15UL);
        using var gen = new TorchSharp.torch.Generator(key & 0x7FFF_FFFF_FFFF_FFFFUL);
        var t = randn(shape, ScalarType.Float32, generator: gen).TimesInPlace(Std);
        if (linear)
        {
            var rng = new Random((int)(key & 0x7FFF_FFFF));
            var cols = Enumerable.Range(0, HeavyChannels).Select(_ => (long)rng.Next((int)shape[1])).Distinct().ToArray();
            using var idx = tensor(cols, ScalarType.Int64);
            using var heavy = t.index_select(1, idx).TimesInPlace(HeavyFactor);
            t.index_copy_(1, idx, heavy);
        }
        return t;
    }

    static ulong Fnv(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char ch in s) { h ^= ch; h *= 1099511628211UL; }
        return h;
    }
}
