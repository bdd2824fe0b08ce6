using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>
/// Random checkpoints with the exact shapes of real LLaMA-family, Mistral and Qwen models, for scale tests, benchmarks and
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

    /// <summary>A real model's shapes; <paramref name="HeadDim"/> 0 is hidden / heads. The family (from the architecture) adds its biases and q/k norms.</summary>
    public sealed record Preset(string Name, string Architecture, int Hidden, int Intermediate, int Layers, int Heads, int KvHeads,
        int Vocab, int MaxPositions, double RmsEps, double RopeTheta, int HeadDim = 0, RopeScaling? Rope = null)
    {
        public int HeadDimension => HeadDim > 0 ? HeadDim : Hidden / Heads;

        /// <summary>The config of this preset with <paramref name="layers"/> layers (null: all) in <paramref name="torchDtype"/>.</summary>
        public LlamaConfig Config(int? layers, string torchDtype, int? bos, int? eos) => new()
        {
            Architecture = Architecture, HiddenSize = Hidden, IntermediateSize = Intermediate, NumLayers = layers ?? Layers,
            NumHeads = Heads, NumKvHeads = KvHeads, HeadDim = HeadDimension, RmsNormEps = RmsEps, RopeTheta = RopeTheta,
            RopeScaling = Rope, MaxPositionEmbeddings = MaxPositions, VocabSize = Vocab, TieWordEmbeddings = false,
            TorchDtype = torchDtype, BosTokenId = bos, EosTokenId = eos,
        };
    }

    public static readonly Preset[] Presets =
    [
        new("llama-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 2048, 1e-6, 10000),
        new("llama-2-13b", "LlamaForCausalLM", 5120, 13824, 40, 40, 40, 32000, 4096, 1e-5, 10000),
        new("llama-3-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 8192, 1e-5, 500000),
        new("mistral-7b", "MistralForCausalLM", 4096, 14336, 32, 32, 8, 32000, 32768, 1e-5, 1000000),
        // Meta-Llama-3.1-8B: rope_scaling llama3 (factor 8, low 1, high 4, original 8192).
        new("llama-3.1-8b", "LlamaForCausalLM", 4096, 14336, 32, 32, 8, 128256, 131072, 1e-5, 500000, Rope: new RopeScaling("llama3", 8, 1, 4, 8192)),
        // Qwen2.5-7B: q/k/v bias, untied head, vocab_size 152064 in its config (151,646 tokens, padded).
        new("qwen2.5-7b", "Qwen2ForCausalLM", 3584, 18944, 28, 28, 4, 152064, 131072, 1e-6, 1000000),
        // Qwen3-8B: q_norm / k_norm, head_dim 128.
        new("qwen3-8b", "Qwen3ForCausalLM", 4096, 12288, 36, 32, 8, 151936, 40960, 1e-6, 1000000, HeadDim: 128),
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

        var config = p.Config(n, scalar switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" },
            tokCfg.BosTokenId, tokCfg.EosTokenId).ToJson();
        config["synthetic"] = $"prunerzero synth --preset {p.Name} --layers {n} --dtype {dtype} --seed {seed}";
        var cfg = LlamaConfig.FromJson(config);

        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var file in TextTokenizer.Files.Append("generation_config.json"))
        {
            string src = Path.Combine(tokenizerDir, file);
            if (File.Exists(src)) File.Copy(src, Path.Combine(outDir, file), overwrite: true);
        }

        long c = p.Hidden, hd = (long)p.Heads * p.HeadDimension, kvd = (long)p.KvHeads * p.HeadDimension, f = p.Intermediate;
        long[] outDim = [hd, kvd, kvd, c, f, f, c];   // by LinearKind
        var specs = new List<(string Name, long[] Shape, bool Linear)> { ("model.embed_tokens.weight", [p.Vocab, c], false) };
        for (int i = 0; i < n; i++)
        {
            string pre = $"model.layers.{i}.";
            specs.Add((pre + "input_layernorm.weight", [c], false));
            specs.Add((pre + "self_attn.q_proj.weight", [hd, c], true));
            specs.Add((pre + "self_attn.k_proj.weight", [kvd, c], true));
            specs.Add((pre + "self_attn.v_proj.weight", [kvd, c], true));
            specs.Add((pre + "self_attn.o_proj.weight", [c, hd], true));
            foreach (var k in LinearKinds.All.Where(cfg.HasBias)) specs.Add((pre + k.HfName() + ".bias", [outDim[(int)k]], false));
            if (cfg.QkNorm)
            {
                specs.Add((pre + "self_attn.q_norm.weight", [p.HeadDimension], false));
                specs.Add((pre + "self_attn.k_norm.weight", [p.HeadDimension], false));
            }
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

    /// <summary>One tensor, float32: norms are 1, others (biases included) N(0, Std²) from a generator seeded by (seed, name); linears get heavy input columns.</summary>
    public static Tensor Tensor(string name, long[] shape, bool linear, int seed)
    {
        if (shape.Length == 1 && !name.EndsWith(".bias", StringComparison.Ordinal)) return ones(shape, ScalarType.Float32);
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
