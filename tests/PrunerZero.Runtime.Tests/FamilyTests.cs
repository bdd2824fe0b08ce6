using System.Text.Json.Nodes;
using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// Llama-3.x (rope_scaling llama3 / linear), Qwen2/2.5 (q/k/v bias), Qwen3 (q_norm/k_norm, explicit head_dim),
/// Mistral and Qwen sliding windows: each forward against <see cref="PlainDecoder"/> (the formulas of the
/// transformers modeling files in double loops), the inverse frequencies against numbers computed by hand,
/// the configs that are refused, and pruning and saving with the family's extra tensors.
/// </summary>
public class FamilyTests : TorchGuarded
{
    // 14 tokens: longer than the sliding windows used below.
    static readonly int[] Ids = [256, 5, 77, 12, 199, 3, 3, 150, 42, 299, 0, 17, 88, 121];

    public static JsonObject Config(string family, bool tied = false, string dtype = "float32", int kvHeads = 2) =>
        TestCheckpoints.FamilyConfig(family, tied, dtype, kvHeads);

    [Theory]
    [InlineData("llama3", false, "float32", 2)]
    [InlineData("llama3", true, "bfloat16", 1)]
    [InlineData("llama-linear", false, "float32", 2)]
    [InlineData("llama-bias", true, "float16", 4)]
    [InlineData("mistral-window", false, "float32", 2)]
    [InlineData("mistral-window", true, "bfloat16", 2)]
    [InlineData("qwen2", true, "float32", 2)]
    [InlineData("qwen2", false, "bfloat16", 2)]
    [InlineData("qwen2-window", false, "float16", 1)]
    [InlineData("qwen3", false, "float32", 2)]
    [InlineData("qwen3", true, "float16", 4)]
    [InlineData("qwen3", false, "bfloat16", 1)]
    public void ForwardMatchesTheFamilysFormulas(string family, bool tied, string dtype, int kvHeads)
    {
        string dir = TestCheckpoints.Write(Config(family, tied, dtype, kvHeads), seed: 21);
        using var model = Checkpoint.Load(dir);
        Assert.Equal(tied, ReferenceEquals(model.Embed, model.LmHead));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var got = TestCheckpoints.Floats(model.Forward(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length])));
        var want = new PlainDecoder(dir).Logits(Ids);
        ForwardTests.AssertLogitsClose(got, want, model.Config.VocabSize, family);
    }

    /// <summary>The family's difference changes the logits (so the comparison above could fail): the same weights read as plain Llama differ.</summary>
    [Theory]
    [InlineData("llama3")]
    [InlineData("mistral-window")]
    [InlineData("qwen2-window")]
    public void TheFamilysDifferenceChangesTheLogits(string family)
    {
        string dir = TestCheckpoints.Write(Config(family), seed: 22);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        var plain = new PlainDecoder(dir).Logits(Ids);
        cfg.Remove("rope_scaling");
        cfg["use_sliding_window"] = false;
        cfg["sliding_window"] = null;
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        var without = new PlainDecoder(dir).Logits(Ids);
        double diff = plain.Zip(without).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)));
        Assert.True(diff > 1e-3, $"{family}: the difference moves the logits by only {diff}");
    }

    /// <summary>
    /// Meta-Llama-3.1-8B's RoPE (head_dim 128, theta 500000, llama3 factor 8, low 1, high 4, original 8192): the inverse
    /// frequencies against numbers computed by hand (python3, double) from _compute_llama3_parameters' formula.
    /// </summary>
    [Fact]
    public void Llama3InverseFrequenciesEqualHandComputedValues()
    {
        var o = Config("llama3");
        o["hidden_size"] = 4096; o["num_attention_heads"] = 32; o["head_dim"] = 128; o["rope_theta"] = 500000.0;
        o["rope_scaling"]!["original_max_position_embeddings"] = 8192;
        var cfg = LlamaConfig.FromJson(o);
        using var scope = NewDisposeScope();
        var got = TestCheckpoints.Floats(LlamaModel.InverseFrequencies(cfg));
        Assert.Equal(64, got.Length);
        // index: value. 0-20 kept (wavelength < 2048), 30 interpolated, 40 and beyond divided by 8.
        (int I, double V)[] hand =
        [
            (0, 1.0), (1, 0.8146172338565447), (20, 0.016560440080994446), (30, 0.0013718935677611381),
            (40, 3.428102195952591e-05), (44, 1.509621717643313e-05), (48, 6.647869871181236e-06), (63, 3.068925988914511e-07),
        ];
        foreach (var (i, v) in hand) Assert.True(Math.Abs(got[i] - v) <= 2e-6 * v, $"inv_freq[{i}] = {got[i]}, by hand {v}");
        // Linear: every frequency divided by the factor.
        o["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 };
        var lin = TestCheckpoints.Floats(LlamaModel.InverseFrequencies(LlamaConfig.FromJson(o)));
        Assert.True(Math.Abs(lin[1] - 0.8146172338565447 / 8) <= 1e-6 * lin[1], $"linear inv_freq[1] = {lin[1]}");
    }

    [Fact]
    public void ConfigsAreReadAsTheirFamilysConfigClass()
    {
        var l3 = LlamaConfig.FromJson(Config("llama3"));
        Assert.Equal(new RopeScaling("llama3", 8, 1, 4, 1024), l3.RopeScaling);
        Assert.Equal(8, l3.HeadDim);
        // transformers 5 writes rope_parameters with the theta inside.
        var v5 = Config("llama3");
        v5.Remove("rope_scaling");
        v5.Remove("rope_theta");
        v5["rope_parameters"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 8.0, ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 1024,
        };
        var c5 = LlamaConfig.FromJson(v5);
        Assert.Equal(500000.0, c5.RopeTheta);
        Assert.Equal(l3.RopeScaling, c5.RopeScaling);

        var q2 = LlamaConfig.FromJson(Config("qwen2"));
        Assert.Equal(ModelFamily.Qwen2, q2.Family);
        Assert.True(q2.HasBias(LinearKind.Q) && q2.HasBias(LinearKind.K) && q2.HasBias(LinearKind.V));
        Assert.False(q2.HasBias(LinearKind.O) || q2.HasBias(LinearKind.Gate));
        Assert.Null(q2.SlidingWindow);   // use_sliding_window false: sliding_window is not used
        Assert.Null(q2.WindowOf(1));
        var q2w = LlamaConfig.FromJson(Config("qwen2-window"));
        Assert.Equal([null, 5], Enumerable.Range(0, 2).Select(q2w.WindowOf));
        var explicitTypes = Config("qwen2-window");
        explicitTypes["layer_types"] = new JsonArray("sliding_attention", "full_attention");
        Assert.Equal([5, null], Enumerable.Range(0, 2).Select(LlamaConfig.FromJson(explicitTypes).WindowOf));

        var q3 = LlamaConfig.FromJson(Config("qwen3"));
        Assert.True(q3.QkNorm);
        Assert.Equal(12, q3.HeadDim);
        var q3Default = Config("qwen3");
        q3Default.Remove("head_dim");
        Assert.Equal(128, LlamaConfig.FromJson(q3Default).HeadDim);   // Qwen3Config's default, not hidden / heads

        var m = LlamaConfig.FromJson(Config("mistral-window"));
        Assert.Equal([4, 4], Enumerable.Range(0, 2).Select(m.WindowOf));
        // Llama has no sliding window: LlamaConfig does not read the key.
        var llamaWithKey = TestCheckpoints.Config();
        llamaWithKey["sliding_window"] = 4;
        Assert.Null(LlamaConfig.FromJson(llamaWithKey).WindowOf(0));

        // The config written back reads as the same config.
        foreach (var c in new[] { l3, q2, q2w, q3, m, LlamaConfig.FromJson(Config("llama-bias")) })
            Assert.Equal(c.ToJson().ToJsonString(), LlamaConfig.FromJson(c.ToJson()).ToJson().ToJsonString());
    }

    [Theory]
    [InlineData("rope_scaling", """{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}""", "rope_scaling of type 'yarn' is not implemented (implemented: default, linear, llama3)")]
    [InlineData("rope_scaling", """{"type": "dynamic", "factor": 2.0}""", "rope_scaling of type 'dynamic' is not implemented")]
    [InlineData("rope_scaling", """{"rope_type": "longrope", "short_factor": [1], "long_factor": [1]}""", "rope_scaling of type 'longrope' is not implemented")]
    [InlineData("rope_scaling", """{"rope_type": "llama3", "factor": 8.0}""", "rope_scaling of type 'llama3' needs 'low_freq_factor'")]
    [InlineData("partial_rotary_factor", "0.5", "partial_rotary_factor 0.5 is not implemented")]
    [InlineData("architectures", """["GemmaForCausalLM"]""", "architecture 'GemmaForCausalLM' (model_type 'llama') is not supported; supported: LlamaForCausalLM (llama), MistralForCausalLM (mistral), Qwen2ForCausalLM (qwen2), Qwen3ForCausalLM (qwen3)")]
    [InlineData("model_type", "\"mixtral\"", "architecture 'LlamaForCausalLM' (model_type 'mixtral') is not supported; supported: LlamaForCausalLM (llama)")]
    [InlineData("model_type", "\"qwen2\"", "architectures names LlamaForCausalLM but model_type is 'qwen2'")]
    public void OtherConfigsAreRefusedByName(string key, string value, string message)
    {
        var o = TestCheckpoints.Config();
        o[key] = JsonNode.Parse(value);
        var e = Assert.Throws<PrunerZeroException>(() => LlamaConfig.FromJson(o));
        Assert.StartsWith(message, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void BiasesTheFamilyDoesNotReadAreRefused()
    {
        var q2 = Config("qwen2");
        q2["attention_bias"] = true;
        Assert.Contains("attention_bias = true is not read by Qwen2ForCausalLM", Assert.Throws<PrunerZeroException>(() => LlamaConfig.FromJson(q2)).Message);
        var m = Config("mistral-window");
        m["mlp_bias"] = true;
        Assert.Contains("mlp_bias = true is not read by MistralForCausalLM", Assert.Throws<PrunerZeroException>(() => LlamaConfig.FromJson(m)).Message);
        // A checkpoint whose tensors lack the family's bias is refused naming it.
        string dir = TestCheckpoints.Write(Config("llama-bias"), seed: 3);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        cfg["architectures"] = new JsonArray("Qwen3ForCausalLM");
        cfg["model_type"] = "qwen3";
        cfg["head_dim"] = 8;
        cfg.Remove("mlp_bias");
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        Assert.Contains("tensor 'model.layers.0.self_attn.q_norm.weight' is missing", Assert.Throws<PrunerZeroException>(() => Checkpoint.Load(dir)).Message);
    }

    /// <summary>Pruning reaches the linears' weights only: biases and q_norm/k_norm come out bit for bit, and a saved pruned checkpoint keeps them, the family's config and the perplexity.</summary>
    [Theory]
    [InlineData("qwen2", "bfloat16", "wanda")]
    [InlineData("qwen3", "float16", "sparsegpt")]
    [InlineData("llama-bias", "float32", "wanda")]
    [InlineData("mistral-window", "float32", "sparsegpt")]
    public void PruningLeavesBiasesAndNormsAndSavingKeepsThem(string family, string dtype, string method)
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(Config(family, dtype: dtype), seed: 31);
        using var model = Checkpoint.Load(dir, keepDtype: true);
        var before = model.NamedTensors().Where(t => !IsLinearWeight(t.Name)).ToDictionary(t => t.Name, t => t.Tensor.clone());
        if (family != "mistral-window")   // Mistral has no extra tensors; its case prunes through the sliding window (12 tokens, window 4)
            Assert.Contains(before.Keys, n => n.EndsWith(".bias") || n.Contains("_norm.weight") && n.Contains("self_attn"));
        var rng = new Random(5);
        var windows = Enumerable.Range(0, 4).Select(_ => Enumerable.Range(0, 12).Select(_ => (long)rng.Next(model.Config.VocabSize)).ToArray()).ToArray();
        var calib = new CalibrationSet("synthetic", CalibSampling.Stride, 0, 12, windows);
        var target = PruneTarget.Unstructured(0.5);
        var pruner = new Pruner(new CpuBackend());
        PruneReport report;
        if (method == "sparsegpt")
        {
            using var obs = new ObsUpdate(true);
            report = pruner.PruneSequential(model, calib, null, Metrics.Magnitude, target, obs: obs);
        }
        else report = pruner.PruneSequential(model, calib, null, Metrics.Resolve(method), target);
        Assert.True(report.Valid, report.InvalidReason);
        Assert.All(report.Layers, l => Assert.Equal(0.5, l.Sparsity, 2));
        foreach (var (name, t) in model.NamedTensors().Where(t => !IsLinearWeight(t.Name)))
            Assert.True(t.allclose(before[name], 0, 0), $"{name} changed in pruning");

        using var ids = tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length]);
        double nll;
        using (no_grad()) nll = model.NextTokenNll(ids).SumNll;
        string outDir = TestCheckpoints.TempDir("family-saved");
        Checkpoint.Save(model, outDir, dir, model.WeightDtype);
        using var again = Checkpoint.Load(outDir, keepDtype: true);
        Assert.Equal(model.Config, again.Config with { LayerTypes = model.Config.LayerTypes });
        Assert.Equal(model.NamedTensors().Select(t => t.Name), again.NamedTensors().Select(t => t.Name));
        foreach (var ((name, a), (_, b)) in model.NamedTensors().Zip(again.NamedTensors()))
            Assert.True(a.allclose(b, 0, 0), $"{name} changed in the save");
        using (no_grad()) Assert.Equal(nll, again.NextTokenNll(ids).SumNll);
        foreach (var t in before.Values) t.Dispose();
    }

    /// <summary>G through the family's attention (q_norm, biases, the sliding window) against central finite differences: G² = Σ_windows (100·∂L/∂w)².</summary>
    [Theory]
    [InlineData("qwen3", 0, LinearKind.Q)]
    [InlineData("qwen2", 1, LinearKind.K)]
    [InlineData("mistral-window", 0, LinearKind.V)]
    [InlineData("llama3", 0, LinearKind.K)]
    public void GradientsMatchFiniteDifferences(string family, int layer, LinearKind kind)
    {
        using var testScope = NewDisposeScope();
        var o = Config(family);
        o["vocab_size"] = 260;
        using var model = Checkpoint.Load(TestCheckpoints.Write(o, seed: 4, scale: 0.5f));
        var rng = new Random(3);
        var windows = Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, 12).Select(_ => (long)rng.Next(260)).ToArray()).ToArray();
        var calib = new CalibrationSet("synthetic", CalibSampling.Stride, 0, 12, windows);
        using var g = GradientStats.Compute(model, calib);
        var gw = TestCheckpoints.Floats(g[layer, kind]);
        var idx = Enumerable.Range(0, gw.Length).OrderByDescending(i => gw[i]).Take(3).ToArray();
        using var _ = no_grad();
        var flat = model.Blocks[layer][kind].view(-1);
        foreach (int i in idx)
        {
            // h small: the llama3 case (head_dim 8, weights 0.5) curves enough for 1e-2 to be 10% off.
            double want = PruningTests.FiniteDifferenceG(model, calib, flat, i, 2e-3f);
            Assert.Equal(want, gw[i], 0.03 * want);
        }
    }

    static bool IsLinearWeight(string name) => LinearKinds.All.Any(k => name.EndsWith(k.HfName() + ".weight", StringComparison.Ordinal));

    /// <summary>The presets' parameter counts equal the published models' (biases and q/k norms included).</summary>
    [Theory]
    [InlineData("llama-3.1-8b", "LlamaForCausalLM", 8_030_261_248L)]
    [InlineData("qwen2.5-7b", "Qwen2ForCausalLM", 7_615_616_512L)]
    [InlineData("qwen3-8b", "Qwen3ForCausalLM", 8_190_735_360L)]
    public void SynthPresetsHaveTheRealShapes(string name, string arch, long parameters)
    {
        var c = SyntheticCheckpoint.Find(name).Config(null, "bfloat16", null, null);
        Assert.Equal(arch, c.Architecture);
        Assert.Equal(parameters, c.ParameterCount);
    }
}
