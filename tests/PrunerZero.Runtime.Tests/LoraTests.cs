using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// LoRA as PEFT computes it (issue 25): the forward against plain double-precision math, gradients only into A and B,
/// the masked merge against its formula, PEFT's key names and config fields, and a resumed fine-tuning run against
/// one never stopped.
/// </summary>
public class LoraTests : TorchGuarded
{
    static readonly int[] Ids = [256, 5, 77, 12, 199, 3, 3, 150, 42, 299, 0, 17];
    static readonly LoraConfig AllTargets = new(4, 8, 0.0, LinearKinds.All);

    /// <summary>Random non-zero B (a fresh adapter's B is zero, which would hide half the math).</summary>
    static void RandomizeB(LoraAdapters lora, int seed)
    {
        using var _ = no_grad();
        using var gen = new Generator((ulong)seed);
        foreach (var (name, t) in lora.Named())
            if (name.Contains("lora_B"))
            {
                using var scope = NewDisposeScope();
                t.copy_(randn(t.shape, generator: gen).TimesInPlace(0.05));
            }
    }

    static double[] D(Tensor t) => TestCheckpoints.Floats(t).Select(x => (double)x).ToArray();

    /// <summary>W + s·B·A in double loops: W (O, I), A (R, I), B (O, R).</summary>
    static double[] MergedPlain(double[] w, double[] a, double[] b, long o, long i, int r, double s)
    {
        var m = new double[w.Length];
        for (long p = 0; p < o; p++)
            for (long q = 0; q < i; q++)
            {
                double acc = 0;
                for (int k = 0; k < r; k++) acc += b[p * r + k] * a[k * i + q];
                m[p * i + q] = w[p * i + q] + s * acc;
            }
        return m;
    }

    [Fact]
    public void ForwardWithAdapterEqualsPlainMathOnMergedWeights()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 11);
        using var model = Checkpoint.Load(dir);
        using var lora = LoraAdapters.Create(model, AllTargets, seed: 3);
        RandomizeB(lora, 5);
        lora.Attach(model);
        float[] got;
        using (var scope = NewDisposeScope())
        using (no_grad())
            got = TestCheckpoints.Floats(model.Forward(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length])));
        LoraAdapters.Detach(model);

        // Independent: W·x + (alpha/r)·B·A·x is (W + (alpha/r)·B·A)·x; the merged weights built in double, then the
        // plain double-precision forward (no TorchSharp, no hook).
        using (no_grad())
            for (int l = 0; l < model.Blocks.Count; l++)
                foreach (var k in LinearKinds.All)
                {
                    using var scope = NewDisposeScope();
                    var w = model.Blocks[l][k];
                    var (a, b) = lora[l, k];
                    var merged = MergedPlain(D(w), D(a), D(b), w.shape[0], w.shape[1], AllTargets.Rank, AllTargets.Scaling);
                    w.copy_(tensor(merged.Select(x => (float)x).ToArray(), w.shape));
                }
        var want = new PlainLlama(model).Logits(Ids);
        int v = model.Config.VocabSize;
        double maxErr = 0, maxDelta = 0;
        using var baseModel = Checkpoint.Load(dir);
        var plainBase = new PlainLlama(baseModel).Logits(Ids);
        for (int p = 0; p < Ids.Length; p++)
            for (int j = 0; j < v; j++)
            {
                maxErr = Math.Max(maxErr, Math.Abs(got[p * v + j] - want[p][j]));
                maxDelta = Math.Max(maxDelta, Math.Abs(want[p][j] - plainBase[p][j]));
            }
        Assert.True(maxDelta > 1e-2, $"the adapter barely changes the logits ({maxDelta}): the test would not see a missing term");
        Assert.True(maxErr < 1e-4, $"max |logit error| {maxErr}");
    }

    /// <summary>Zeros every weight of the given linears whose index is ≡ 0 or 1 (mod 4): a 50% mask, different in every row.</summary>
    static void Prune(LlamaModel model, IEnumerable<LinearKind> kinds)
    {
        using var four = 4.ToScalar();
        using var two = 2.ToScalar();
        using var _ = no_grad();
        foreach (var b in model.Blocks)
            foreach (var k in kinds)
            {
                using var scope = NewDisposeScope();
                var keep = TorchOps.Arange(0, b[k].NumberOfElements).remainder(four).ge(two).reshape(b[k].shape);
                b[k].copy_(where(keep, b[k], zeros_like(b[k])));
            }
    }

    /// <summary>A checkpoint like <see cref="TestCheckpoints.Write"/>'s with every linear but gate pruned by <see cref="Prune"/>.</summary>
    static string WritePruned(int seed)
    {
        string dense = TestCheckpoints.Write(TestCheckpoints.Config(), seed: seed);
        string dir = TestCheckpoints.TempDir("pruned");
        using var model = Checkpoint.Load(dense, keepDtype: true);
        Prune(model, LinearKinds.All.Where(k => k != LinearKind.Gate));
        Checkpoint.Save(model, dir, dense, model.WeightDtype);
        return dir;
    }

    [Fact]
    public void MaskedUpdateForwardEqualsTheMergedMaskedModel()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 21);
        using var model = Checkpoint.Load(dir);
        var pruned = LinearKinds.All.Where(k => k != LinearKind.Gate).ToList();   // gate stays dense: its update is not masked
        Prune(model, pruned);
        using var lora = LoraAdapters.Create(model, AllTargets, seed: 7);
        RandomizeB(lora, 11);
        Assert.True(LoraAdapters.HasZeros(model, AllTargets));
        Assert.Equal(model.Blocks.Count * pruned.Count, lora.MaskUpdate(model));
        lora.Attach(model);
        float[] got;
        using (var scope = NewDisposeScope())
        using (no_grad())
            got = TestCheckpoints.Floats(model.Forward(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length])));
        LoraAdapters.Detach(model);

        // Independent: the merged-masked weights (W + s·B·A) ⊙ (W ≠ 0) built in double loops, then the plain double
        // forward; and the unmasked merge W + s·B·A, which the masked forward must not be.
        var masked = new List<Dictionary<LinearKind, double[]>>();
        var unmasked = new List<Dictionary<LinearKind, double[]>>();
        for (int l = 0; l < model.Blocks.Count; l++)
        {
            masked.Add(new());
            unmasked.Add(new());
            foreach (var k in LinearKinds.All)
            {
                using var scope = NewDisposeScope();
                var w = model.Blocks[l][k];
                var (a, b) = lora[l, k];
                var wd = D(w);
                var m = MergedPlain(wd, D(a), D(b), w.shape[0], w.shape[1], AllTargets.Rank, AllTargets.Scaling);
                unmasked[l][k] = m;
                masked[l][k] = m.Select((x, i) => wd[i] == 0 ? 0 : x).ToArray();
                if (k != LinearKind.Gate) Assert.Contains(0.0, wd);
            }
        }
        double[][] Logits(List<Dictionary<LinearKind, double[]>> weights)
        {
            using var copy = Checkpoint.Load(dir);
            using (no_grad())
                for (int l = 0; l < copy.Blocks.Count; l++)
                    foreach (var k in LinearKinds.All)
                    {
                        using var scope = NewDisposeScope();
                        copy.Blocks[l][k].copy_(tensor(weights[l][k].Select(x => (float)x).ToArray(), copy.Blocks[l][k].shape));
                    }
            return new PlainLlama(copy).Logits(Ids);
        }
        var want = Logits(masked);
        var dense = Logits(unmasked);
        int v = model.Config.VocabSize;
        double maxErr = 0, maxDelta = 0;
        for (int p = 0; p < Ids.Length; p++)
            for (int j = 0; j < v; j++)
            {
                maxErr = Math.Max(maxErr, Math.Abs(got[p * v + j] - want[p][j]));
                maxDelta = Math.Max(maxDelta, Math.Abs(want[p][j] - dense[p][j]));
            }
        Assert.True(maxDelta > 1e-2, $"masking the update barely changes the logits ({maxDelta}): the test would not see a missing mask");
        Assert.True(maxErr < 1e-4, $"max |logit error| {maxErr}");

        // The merge of the same adapter gives the same model: MergeMasked's weights are the masked ones.
        lora.MergeMasked(model);
        for (int l = 0; l < model.Blocks.Count; l++)
            foreach (var k in LinearKinds.All)
            {
                var mw = D(model.Blocks[l][k]);
                for (int i = 0; i < mw.Length; i++)
                    Assert.True(Math.Abs(mw[i] - masked[l][k][i]) <= 1e-5 * Math.Max(1, Math.Abs(masked[l][k][i])), $"layer {l} {k}[{i}]");
            }
    }

    [Fact]
    public void OneLinearIsWxPlusScaledBAx()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 12);
        using var model = Checkpoint.Load(dir);
        var cfg = new LoraConfig(3, 5, 0.3, [LinearKind.Up]);   // dropout set, but no generator: evaluation, no dropout
        using var lora = LoraAdapters.Create(model, cfg, seed: 4);
        RandomizeB(lora, 6);
        lora.Attach(model);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn([2, 3, model.Config.HiddenSize]);
        var block = model.Blocks[1];
        var gotUp = TestCheckpoints.Floats(LlamaModel.Linear(block, LinearKind.Up, x));
        var gotGate = TestCheckpoints.Floats(LlamaModel.Linear(block, LinearKind.Gate, x));
        double[] xs = D(x), w = D(block.Up), a = D(lora[1, LinearKind.Up].A), b = D(lora[1, LinearKind.Up].B), wg = D(block.Gate);
        long o = block.Up.shape[0], n = block.Up.shape[1];
        for (int row = 0; row < 6; row++)
            for (long p = 0; p < o; p++)
            {
                double wx = 0, gx = 0;
                for (long q = 0; q < n; q++) { wx += w[p * n + q] * xs[row * n + q]; gx += wg[p * n + q] * xs[row * n + q]; }
                double bax = 0;
                for (int k = 0; k < cfg.Rank; k++)
                {
                    double ax = 0;
                    for (long q = 0; q < n; q++) ax += a[k * n + q] * xs[row * n + q];
                    bax += b[p * cfg.Rank + k] * ax;
                }
                Assert.True(Math.Abs(gotUp[row * o + p] - (wx + cfg.Scaling * bax)) < 1e-4, $"up[{row},{p}]");
                Assert.True(Math.Abs(gotGate[row * o + p] - gx) < 1e-4, $"gate (no target) [{row},{p}]");
            }
    }

    [Fact]
    public void KaimingUniformInitAndZeroB()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 13);
        using var model = Checkpoint.Load(dir);
        using var lora = LoraAdapters.Create(model, AllTargets, seed: 1);
        using var again = LoraAdapters.Create(model, AllTargets, seed: 1);
        foreach (var ((name, t), (_, u)) in lora.Named().Zip(again.Named()))
        {
            var f = TestCheckpoints.Floats(t);
            Assert.Equal(f, TestCheckpoints.Floats(u));   // a seed means the same adapter
            if (name.Contains("lora_B")) Assert.All(f, x => Assert.Equal(0f, x));
            else
            {
                double bound = 1 / Math.Sqrt(t.shape[1]);
                Assert.All(f, x => Assert.InRange(x, -bound, bound));
                Assert.True(f.Max() > bound * 0.8 && f.Min() < -bound * 0.8, $"{name}: not spread over (−1/√in, 1/√in)");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void GradientsFlowOnlyIntoAAndB(bool maskedUpdate)
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: "bfloat16"), seed: 14);
        using var model = Checkpoint.Load(dir, keepDtype: true);
        Assert.Equal(ScalarType.BFloat16, model.WeightDtype);
        using var lora = LoraAdapters.Create(model, new LoraConfig(4, 8, 0.1, [LinearKind.Q, LinearKind.V, LinearKind.Down]), seed: 2);
        RandomizeB(lora, 7);
        if (maskedUpdate)
        {
            Prune(model, LinearKinds.All);
            Assert.Equal(model.Blocks.Count * 3, lora.MaskUpdate(model));
        }
        lora.Attach(model);
        var before = model.NamedTensors().Select(nt => (nt.Name, Bytes: TestCheckpoints.Floats(nt.Tensor))).ToList();
        using var optimizer = new AdamW([new AdamW.Group(lora.Named().ToList(), 0.0)]);
        using (var scope = NewDisposeScope())
        {
            using var gen = new Generator(9);
            lora.DropoutGenerator = gen;
            model.NextTokenLoss(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length])).backward();
            lora.DropoutGenerator = null;
        }
        foreach (var (name, t) in model.NamedTensors())
        {
            Assert.False(t.requires_grad, $"{name} requires grad");
            Assert.Null(t.grad);
            Assert.Equal(ScalarType.BFloat16, t.dtype);
        }
        foreach (var (name, t) in lora.Named())
        {
            using var scope = NewDisposeScope();
            Assert.NotNull(t.grad);
            Assert.True(t.grad!.abs().sum().item<float>() > 0, $"{name}: zero gradient");
        }
        var aBefore = lora.Named().Select(nt => TestCheckpoints.Floats(nt.Tensor)).ToList();
        optimizer.Step(1e-2);
        foreach (var ((name, bytes), (_, t)) in before.Zip(model.NamedTensors()))
            Assert.True(bytes.SequenceEqual(TestCheckpoints.Floats(t)), $"{name} changed");
        Assert.All(lora.Named().Zip(aBefore), p => Assert.False(TestCheckpoints.Floats(p.First.Tensor).SequenceEqual(p.Second), $"{p.First.Name} did not move"));
    }

    [Fact]
    public void CheckpointedBackwardGivesThePlainGradients()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: "bfloat16"), seed: 18);
        using var model = Checkpoint.Load(dir, keepDtype: true);
        using var lora = LoraAdapters.Create(model, new LoraConfig(4, 8, 0.0, LinearKinds.All), seed: 2);
        RandomizeB(lora, 10);
        lora.Attach(model);
        using var ids = tensor(Ids.Concat(Ids.Reverse()).Select(i => (long)i).ToArray(), [2, Ids.Length]);
        double plainLoss;
        List<float[]> plain;
        using (var scope = NewDisposeScope())
        {
            var loss = model.NextTokenLoss(ids);
            plainLoss = loss.item<float>();
            loss.DividedBy(2).backward();
            plain = lora.Named().Select(nt => TestCheckpoints.Floats(nt.Tensor.grad!)).ToList();
        }
        using (var scope = NewDisposeScope())
            foreach (var (_, t) in lora.Named()) t.grad!.zero_();
        double loss2 = LoraFinetune.CheckpointedBackward(model, lora, ids, 2, _ => new Generator(1));
        Assert.Equal(plainLoss, loss2, 5);
        using var check = NewDisposeScope();
        foreach (var ((name, t), want) in lora.Named().Zip(plain))
        {
            var got = TestCheckpoints.Floats(t.grad!);
            double scale = want.Max(Math.Abs);
            Assert.True(scale > 0, $"{name}: no gradient");
            for (int i = 0; i < got.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 1e-4 * scale, $"{name}[{i}]: {got[i]} vs {want[i]}");
        }
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("bfloat16")]
    public void MergeMaskedEqualsTheFormulaAndKeepsEveryZero(string dtype)
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: dtype), seed: 15);
        using var model = Checkpoint.Load(dir, keepDtype: true);
        Prune(model, LinearKinds.All);
        using var lora = LoraAdapters.Create(model, AllTargets, seed: 5);
        RandomizeB(lora, 8);
        var pruned = model.Blocks.Select(b => LinearKinds.All.ToDictionary(k => k, k => D(b[k]))).ToList();
        var counts = lora.MergeMasked(model);
        Assert.Equal(model.Blocks.Count * 7, counts.Count);
        foreach (var c in counts)
        {
            Assert.Equal(c.ZerosBefore, c.ZerosAfter);
            Assert.True(c.ZerosBefore >= c.Numel / 2, $"layer {c.Layer} {c.Kind}: {c.ZerosBefore} zeros");
        }
        double tol = dtype == "float32" ? 1e-5 : 1.0 / 128;   // bf16 keeps 8 significant bits
        for (int l = 0; l < model.Blocks.Count; l++)
            foreach (var k in LinearKinds.All)
            {
                var w = model.Blocks[l][k];
                Assert.Equal(SafeTensors.ScalarTypeOf(dtype), w.dtype);
                var (a, b) = lora[l, k];
                var want = MergedPlain(pruned[l][k], D(a), D(b), w.shape[0], w.shape[1], AllTargets.Rank, AllTargets.Scaling);
                var got = D(w);
                for (int i = 0; i < got.Length; i++)
                {
                    if (pruned[l][k][i] == 0) Assert.True(got[i] == 0, $"layer {l} {k}[{i}]: a pruned weight became {got[i]}");
                    else Assert.True(Math.Abs(got[i] - want[i]) <= tol * Math.Max(1, Math.Abs(want[i])), $"layer {l} {k}[{i}]: {got[i]} vs {want[i]}");
                }
            }
    }

    [Fact]
    public void PeftLayoutKeysConfigAndRoundTrip()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 16);
        using var model = Checkpoint.Load(dir);
        var cfg = new LoraConfig(8, 16, 0.05, [LinearKind.Q, LinearKind.V]);
        using var lora = LoraAdapters.Create(model, cfg, seed: 6);
        RandomizeB(lora, 9);
        string outDir = TestCheckpoints.TempDir("peft");
        lora.Save(outDir, "some/base");

        var (entries, _) = SafeTensors.ReadHeader(Path.Combine(outDir, "adapter_model.safetensors"));
        var expected = Enumerable.Range(0, 2).SelectMany(l => new[] { "self_attn.q_proj", "self_attn.v_proj" }.SelectMany(m => new[]
        {
            ($"base_model.model.model.layers.{l}.{m}.lora_A.weight", new long[] { 8, 32 }),
            ($"base_model.model.model.layers.{l}.{m}.lora_B.weight", new long[] { m.Contains("q_") ? 32 : 16, 8 }),
        })).ToList();
        Assert.Equal(expected.Select(e => e.Item1).Order(), entries.Select(e => e.Name).Order());
        foreach (var (name, shape) in expected)
        {
            var e = entries.Single(x => x.Name == name);
            Assert.Equal(shape, e.Shape);
            Assert.Equal("F32", e.DType);
        }

        var j = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", j["peft_type"]!.GetValue<string>());
        Assert.Equal("CAUSAL_LM", j["task_type"]!.GetValue<string>());
        Assert.Equal(8, j["r"]!.GetValue<int>());
        Assert.Equal(16, j["lora_alpha"]!.GetValue<int>());
        Assert.Equal(0.05, j["lora_dropout"]!.GetValue<double>());
        Assert.Equal("none", j["bias"]!.GetValue<string>());
        Assert.False(j["fan_in_fan_out"]!.GetValue<bool>());
        Assert.False(j["use_rslora"]!.GetValue<bool>());
        Assert.Equal("some/base", j["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(["q_proj", "v_proj"], j["target_modules"]!.AsArray().Select(x => x!.GetValue<string>()));

        using (var back = LoraAdapters.Load(outDir, model))
        {
            Assert.Equal(cfg.ToString(), back.Config.ToString());
            foreach (var ((n1, t1), (n2, t2)) in lora.Named().Zip(back.Named()))
            {
                Assert.Equal(n1, n2);
                Assert.Equal(TestCheckpoints.Floats(t1), TestCheckpoints.Floats(t2));
            }
        }

        // Settings that change the math and are not implemented are refused, not dropped.
        j["use_rslora"] = true;
        File.WriteAllText(Path.Combine(outDir, "adapter_config.json"), j.ToJsonString());
        var e1 = Assert.Throws<PrunerZeroException>(() => LoraAdapters.Load(outDir, model).Dispose());
        Assert.Contains("use_rslora", e1.Message);
        j["use_rslora"] = false;
        j["target_modules"] = new JsonArray("q_proj");   // the file holds v_proj too: a tensor with no place
        File.WriteAllText(Path.Combine(outDir, "adapter_config.json"), j.ToJsonString());
        var e2 = Assert.Throws<PrunerZeroException>(() => LoraAdapters.Load(outDir, model).Dispose());
        Assert.Contains("v_proj.lora_A", e2.Message);
    }

    static (string Model, string Data, string Eval) FinetuneInputs()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 17);
        string dir = TestCheckpoints.TempDir("ft-data");
        string data = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 40).Select(i => $"{{\"text\": \"Document {i}: the {i % 5} cats and {i * 7} dogs met by the old mill, then parted.\"}}"));
        string eval = Path.Combine(dir, "wiki.valid.raw");
        File.WriteAllText(eval, string.Concat(Enumerable.Range(0, 20).Select(i => $" = Part {i} = \n \n The river {i} runs past {i * 3} green fields . \n")));
        return (model, data, eval);
    }

    static FinetuneOptions Options(string model, string data, string eval, string outDir) => new()
    {
        ModelDir = model, OutDir = outDir, Lora = new LoraConfig(4, 8, 0.1, [LinearKind.Q, LinearKind.V, LinearKind.Up]),
        DataFiles = [data], EvalDataset = eval, Seqlen = 16, Batch = 2, GradAccum = 2, LearningRate = 1e-2, Steps = 7,
        Warmup = 2, Seed = 3, CheckpointEvery = 2, EvalEvery = 3,
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AResumedRunEndsWithTheSameAdapterAsAnUninterruptedOne(bool sparseBase)
    {
        var (model, data, eval) = FinetuneInputs();
        if (sparseBase) model = WritePruned(17);
        string whole = TestCheckpoints.TempDir("ft-whole"), split = TestCheckpoints.TempDir("ft-split");
        var r1 = LoraFinetune.Run(Options(model, data, eval, whole), new Progress<string>(), TextWriter.Null);
        Assert.True(r1.Finished);

        // Killed after step 5 (its last checkpoint is step 4), and while writing the step-6 checkpoint (a half-written
        // folder that state.json does not name), then resumed.
        var r2 = LoraFinetune.Run(Options(model, data, eval, split) with { StopAfter = 5 }, new Progress<string>(), TextWriter.Null);
        Assert.False(r2.Finished);
        Assert.False(File.Exists(Path.Combine(split, "adapter_model.safetensors")));
        string half = Path.Combine(split, "checkpoint", "step-000006");
        Directory.CreateDirectory(half);
        File.WriteAllBytes(Path.Combine(half, "adapter_model.safetensors"), [1, 2, 3]);
        var log = new StringWriter();
        var r3 = LoraFinetune.Run(Options(model, data, eval, split) with { Resume = true }, new Progress<string>(), log);
        Assert.Contains("resumed at step 4/7", log.ToString());
        Assert.Contains(sparseBase ? "update mask: the base is sparse, so 6 of 6 target linears" : "update mask: none", log.ToString());
        Assert.True(r3.Finished);

        Assert.Equal(File.ReadAllBytes(Path.Combine(whole, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(split, "adapter_model.safetensors")));
        Assert.Equal(r1.Losses, r3.Losses);
        Assert.Equal(r1.Evals, r3.Evals);
        Assert.Equal([0, 3, 6, 7], r1.Evals.Select(e => e.Step));
        Assert.True(r1.Losses.Select(x => x.Loss).Distinct().Count() > 1);
        // The adapter moved (B left zero), and another seed gives another adapter.
        string other = TestCheckpoints.TempDir("ft-seed");
        LoraFinetune.Run(Options(model, data, eval, other) with { Seed = 4 }, new Progress<string>(), TextWriter.Null);
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(whole, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(other, "adapter_model.safetensors")));
    }

    [Fact]
    public void TrainingOnTheEvaluationTextIsRefused()
    {
        var (model, data, eval) = FinetuneInputs();
        string copy = Path.Combine(TestCheckpoints.TempDir("ft-copy"), "renamed.txt");
        File.Copy(eval, copy);
        foreach (var bad in new[] { eval, copy })
        {
            var e = Assert.Throws<PrunerZeroException>(() =>
                LoraFinetune.Run(Options(model, data, eval, TestCheckpoints.TempDir("ft-bad")) with { DataFiles = [data, bad] }, new Progress<string>(), TextWriter.Null));
            Assert.Contains("evaluation text", e.Message);
        }
    }
}
