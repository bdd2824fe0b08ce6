using PrunerZero.Kernels;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>Holding weights in the checkpoint's dtype, block-by-block G and hidden states, streamed checkpoints, the memory plan.</summary>
public class ScaleTests : TorchGuarded
{
    static CalibrationSet Calib(LlamaConfig c, int n = 3, int t = 16, int seed = 11)
    {
        var rng = new Random(seed);
        var windows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, t).Select(_ => (long)rng.Next(c.VocabSize)).ToArray()).ToArray();
        return new CalibrationSet("synthetic", CalibSampling.Stride, 0, t, windows);
    }

    /// <summary>The whole-model G as it was computed before the block-by-block version: one backward through the model per window.</summary>
    static Dictionary<(int, LinearKind), float[]> WholeModelG(LlamaModel model, CalibrationSet calib)
    {
        var linears = new List<(int, LinearKind, Tensor)>();
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All) linears.Add((i, k, model.Blocks[i][k]));
        var acc = linears.ToDictionary(l => (l.Item1, l.Item2), l => zeros_like(l.Item3));
        foreach (var (_, _, w) in linears) w.requires_grad_(true);
        foreach (var win in calib.Windows)
        {
            var loss = model.NextTokenLoss(tensor(win, [1, calib.Seqlen]));
            loss.backward();
            using (no_grad())
                foreach (var (i, k, w) in linears)
                {
                    acc[(i, k)].PlusInPlace(w.grad!.Times(GradientStats.Scale).Squared());
                    w.grad!.zero_();
                }
        }
        foreach (var (_, _, w) in linears) { w.requires_grad_(false); w.grad?.Dispose(); }
        return acc.ToDictionary(kv => kv.Key, kv => TestCheckpoints.Floats(kv.Value.sqrt()));
    }

    [Theory]
    [InlineData(2, GradientStats.MlpPartWeights)]   // grouped-query attention
    [InlineData(4, GradientStats.MlpPartWeights)]   // one key/value head per query head
    [InlineData(2, 1000)]                           // the MLP half in parts, as for 7B shapes
    public void BlockwiseGradientsEqualWholeModelBackward(int kvHeads, long mlpPartWeights)
    {
        using var testScope = NewDisposeScope();
        using var model = Checkpoint.Load(TestCheckpoints.Write(TestCheckpoints.Config(vocab: 260, kvHeads: kvHeads), seed: 5, scale: 0.5f));
        var calib = Calib(model.Config, n: 3, t: 12);
        var want = WholeModelG(model, calib);
        var (parts, _) = GradientStats.MlpParts(model.Config.IntermediateSize, model.Config.HiddenSize, mlpPartWeights);
        Assert.Equal(mlpPartWeights == GradientStats.MlpPartWeights, parts == 1);
        using var g = GradientStats.Compute(model, calib, mlpPartWeights: mlpPartWeights);
        foreach (var ((i, k), w) in want)
        {
            var got = TestCheckpoints.Floats(g[i, k]);
            double max = w.Max(Math.Abs);
            Assert.True(max > 0, $"layer {i} {k}: G is all zero");
            for (int e = 0; e < w.Length; e++) Assert.True(Math.Abs(w[e] - got[e]) <= 1e-5 * max + 1e-6, $"layer {i} {k} [{e}]: {got[e]} vs {w[e]}");
        }
    }

    /// <summary>The cache file holds what Compute returns, and is read back layer by layer.</summary>
    [Fact]
    public void GradientCacheIsWrittenBlockByBlockAndReadPerLayer()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(vocab: 260), seed: 6);
        using var model = Checkpoint.Load(dir);
        var calib = Calib(model.Config);
        using var mem = GradientStats.Compute(model, calib);
        using var cached = GradientStats.LoadOrCompute(model, dir, calib, TestCheckpoints.TempDir("gcache"), null, TextWriter.Null);
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
                Assert.Equal(TestCheckpoints.Floats(mem[i, k]), TestCheckpoints.Floats(cached[i, k]));
    }

    /// <summary>The hidden states live in one owner: after every block the same number of tensors is alive as after the first.</summary>
    [Fact]
    public void LiveTensorCountStaysFlatAcrossBlocks()
    {
        var config = TestCheckpoints.Config();
        config["num_hidden_layers"] = 5;
        using var model = Checkpoint.Load(TestCheckpoints.Write(config, seed: 3));
        var calib = Calib(model.Config, n: 11);   // two chunks
        using var acts = new BlockActivations(model, calib);
        var counts = new List<long>();
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            using (var stats = acts.ObserveX(i)) stats.Finish(LinearKind.Q, calib.NSamples);
            acts.Advance(i);
            counts.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        }
        Assert.All(counts, c => Assert.Equal(counts[0], c));
    }

    /// <summary>A bf16 checkpoint stays bf16 in memory; pruning it block by block in float32 gives the masks of pruning its float32 image, and saves bf16.</summary>
    [Fact]
    public void Bf16ModelIsHeldAsBf16AndPrunesLikeItsFloat32Image()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: "bfloat16"), seed: 8);
        using var held = Checkpoint.Load(dir, keepDtype: true);
        using var f32 = Checkpoint.Load(dir);
        Assert.All(held.NamedTensors(), t => Assert.Equal(ScalarType.BFloat16, t.Tensor.dtype));
        Assert.Equal(held.WeightBytes * 2, f32.WeightBytes);
        var calib = Calib(held.Config, n: 4);
        var a = new Pruner(new CpuBackend()).PruneSequential(held, calib, null, Metrics.Wanda, PruneTarget.Unstructured(0.5));
        var b = new Pruner(new CpuBackend()).PruneSequential(f32, calib, null, Metrics.Wanda, PruneTarget.Unstructured(0.5));
        Assert.Equal(b.Layers.Select(l => l.Zeros), a.Layers.Select(l => l.Zeros));
        foreach (var ((name, x), (_, y)) in held.NamedTensors().Zip(f32.NamedTensors()))
            Assert.True(x.to(ScalarType.Float32).equal(y).all().item<bool>(), $"{name} differs");

        string outDir = TestCheckpoints.TempDir("bf16out");
        Checkpoint.Save(held, outDir, dir, ScalarType.BFloat16);
        var (entries, _) = SafeTensors.ReadHeader(Path.Combine(outDir, "model.safetensors"));
        Assert.All(entries, e => Assert.Equal("BF16", e.DType));
        using var again = Checkpoint.Load(outDir, keepDtype: true);
        foreach (var ((name, x), (_, y)) in held.NamedTensors().Zip(again.NamedTensors())) Assert.True(x.equal(y).all().item<bool>(), $"{name} differs after reload");

        // Evaluation on the bf16-held model equals the float32 image's.
        var ids = tensor(calib.Windows[0], [1, calib.Seqlen]);
        var (s1, _) = held.NextTokenNll(ids);
        var (s2, _) = f32.NextTokenNll(ids);
        Assert.Equal(s2, s1, 4);

        // Dense restore between metrics puts back the bf16 weights exactly.
        Checkpoint.RestoreLinears(held, dir);
        using var dense = Checkpoint.Load(dir, keepDtype: true);
        foreach (var ((name, x), (_, y)) in held.NamedTensors().Zip(dense.NamedTensors())) Assert.True(x.equal(y).all().item<bool>(), $"{name} not restored");
    }

    [Fact]
    public void ShardedCheckpointRoundTrips()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 10);
        using var model = Checkpoint.Load(dir);
        string outDir = TestCheckpoints.TempDir("sharded");
        File.Copy(Path.Combine(dir, "config.json"), Path.Combine(outDir, "config.json"));
        var specs = model.NamedTensors().Select(t => new TensorSpec(t.Name, "F32", t.Tensor.shape)).ToList();
        var byName = model.NamedTensors().ToDictionary(t => t.Name, t => t.Tensor);
        SafeTensors.WriteCheckpoint(outDir, specs, s => byName[s.Name], maxShardBytes: 40_000);
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(outDir, "model-*-of-*.safetensors").Length > 2);
        using var again = Checkpoint.Load(outDir);
        foreach (var ((name, x), (_, y)) in model.NamedTensors().Zip(again.NamedTensors())) Assert.True(x.equal(y).all().item<bool>(), name);
    }

    [Fact]
    public void SynthIsDeterministicWithThePresetShapes()
    {
        using var testScope = NewDisposeScope();
        string tok = TestCheckpoints.TempDir("tok");
        File.WriteAllText(Path.Combine(tok, "config.json"), TestCheckpoints.Config().ToJsonString());
        TestCheckpoints.WriteByteTokenizer(tok);
        var preset = SyntheticCheckpoint.Find("tiny");
        string a = TestCheckpoints.TempDir("synA"), b = TestCheckpoints.TempDir("synB"), c = TestCheckpoints.TempDir("synC");
        SyntheticCheckpoint.Write(preset, 2, "bf16", 7, a, tok);
        SyntheticCheckpoint.Write(preset, 2, "bf16", 7, b, tok);
        SyntheticCheckpoint.Write(preset, 2, "bf16", 8, c, tok);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
        Assert.NotEqual(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(c, "model.safetensors")));
        using var m = Checkpoint.Load(a, keepDtype: true);
        Assert.Equal(ScalarType.BFloat16, m.WeightDtype);
        Assert.Equal([preset.Intermediate, preset.Hidden], m.Blocks[1].Gate.shape);
        Assert.Equal(preset.KvHeads * (preset.Hidden / preset.Heads), m.Blocks[0].K.shape[0]);
        Assert.False(m.Config.TieWordEmbeddings);
        Assert.Equal([preset.Vocab, preset.Hidden], m.LmHead.shape);
        // N(0, 0.02²) apart from the heavy columns.
        var w = TestCheckpoints.Floats(m.Blocks[0].Up.to(ScalarType.Float32));
        double median = w.Select(Math.Abs).Order().ElementAt(w.Length / 2);
        Assert.InRange(median, 0.02 * 0.6, 0.02 * 0.75);   // median |N(0, σ²)| = 0.674 σ
        var colMax = m.Blocks[0].Up.to(ScalarType.Float32).abs().amax([0]);
        Assert.True(colMax.max().item<float>() > 5 * colMax.median().item<float>(), "no heavy input channel");
    }

    [Fact]
    public void MemoryPlanRefusesAndNamesAFittingFlag()
    {
        var cfg = LlamaConfig.FromJson(TestCheckpoints.Config());
        var big = cfg with { HiddenSize = 4096, IntermediateSize = 11008, NumHeads = 32, NumKvHeads = 32, HeadDim = 128, NumLayers = 32, VocabSize = 32000 };
        long weights = big.ParameterCount * 2;
        var plan = MemoryPlan.For(big, weights, 8, 512);
        Assert.InRange(plan.Peak, weights, weights + (4L << 30));
        MemoryPlan.Check(big, weights, 8, 512, withG: false, plan.Peak);   // fits exactly
        var e = Assert.Throws<PrunerZeroException>(() => MemoryPlan.Check(big, weights, 2048, 512, withG: false, plan.Peak + (1L << 30)));
        Assert.Contains("--nsamples", e.Render(p => "--" + p.Replace('_', '-')));   // the parameter, as the CLI renders its flag
        var e2 = Assert.Throws<PrunerZeroException>(() => MemoryPlan.Check(big, weights, 8, 512, withG: false, weights / 2));
        Assert.Contains("weights alone", e2.Message);
    }
}

/// <summary>Two writers of the same file (two processes filling one G cache entry) do not collide.</summary>
public class SafeTensorsWriterTests : TorchGuarded
{
    [Fact]
    public void TwoWritersOfOnePathEachCompleteAndTheLastRenameWins()
    {
        string path = Path.Combine(TestCheckpoints.TempDir("stw"), "g.safetensors");
        var specs = new List<TensorSpec> { new("w", "F32", [2, 3]) };
        using var a = new SafeTensorsWriter(path, specs);
        using var b = new SafeTensorsWriter(path, specs);   // opened while a's file is still being written
        using (var one = ones(2, 3)) a.Write("w", one);
        using (var v = 2f.ToScalar()) using (var two = full(2, 3, v)) b.Write("w", two);
        a.Complete();
        b.Complete();
        var (entries, start) = SafeTensors.ReadHeader(path);
        using var got = SafeTensors.Read(entries.Single(), start);
        Assert.Equal(Enumerable.Repeat(2f, 6), TestCheckpoints.Floats(got));
        Assert.Equal(["g.safetensors"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
    }

    [Fact]
    public void AWriterThatCannotFitRefusesBeforeWritingAByte()
    {
        string dir = TestCheckpoints.TempDir("stw-full");
        string path = Path.Combine(dir, "big.safetensors");
        var specs = new List<TensorSpec> { new("w", "F32", [1L << 48]) };   // 1 PiB: no disk here has it free
        var e = Assert.Throws<PrunerZeroException>(() => new SafeTensorsWriter(path, specs));
        Assert.Contains("not enough disk space to write " + path, e.Message);
        Assert.Contains("1048576.00 GiB", e.Message);   // what it needs, then what the folder has
        Assert.Contains(dir, e.Message);
        Assert.Empty(Directory.GetFiles(dir));
    }
}
