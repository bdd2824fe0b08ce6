using System.Text.Json.Nodes;
using PrunerZero.Kernels;
using PrunerZero.Runtime.Pruning;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// What the search relies on and had no test: one-shot pruning with dense X, restoring the dense weights between
/// metrics, the gradient cache key, and sharded checkpoints (whose names are untrusted).
/// </summary>
public class ProtocolAndCheckpointTests : TorchGuarded
{
    static CalibrationSet Calib(LlamaConfig c, int n = 3, int t = 16, int seed = 11)
    {
        var rng = new Random(seed);
        var windows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, t).Select(_ => (long)rng.Next(c.VocabSize)).ToArray()).ToArray();
        return new CalibrationSet("synthetic", CalibSampling.Stride, 0, t, windows);
    }

    static bool Equal(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static bool SameLinears(LlamaModel a, LlamaModel b, int? block = null) =>
        Enumerable.Range(0, a.Blocks.Count).Where(i => block is null || i == block)
            .All(i => LinearKinds.All.All(k => Equal(a.Blocks[i][k], b.Blocks[i][k])));

    /// <summary>X of block i on the dense model, from plain forward passes (BlockForward of blocks 0..i, nothing pruned).</summary>
    static float[] DenseXPlain(LlamaModel m, CalibrationSet calib, int layer, LinearKind kind)
    {
        using var _ = no_grad();
        using var stats = new XStats();
        var (cos, sin) = m.Rope(calib.Seqlen);
        foreach (var w in calib.Windows)
        {
            var h = m.EmbedTokens(tensor(w, [1, w.Length]));
            for (int i = 0; i < layer; i++) h = m.BlockForward(i, h, cos, sin);
            m.BlockForward(layer, h, cos, sin, stats.Add);
        }
        return stats.Finish(kind, calib.NSamples);
    }

    [Fact]
    public void OneShotEqualsSequentialForMetricsWithoutX()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 21);
        using var seq = Checkpoint.Load(dir);
        using var one = Checkpoint.Load(dir);
        var calib = Calib(seq.Config);
        using var g = GradientStats.Compute(seq, calib);   // on the dense model, shared by both
        foreach (var text in new[] { "magnitude", "pruner-zero" })
        {
            Checkpoint.RestoreLinears(seq, dir);
            Checkpoint.RestoreLinears(one, dir);
            var metric = Metrics.Resolve(text);
            var a = new Pruner(new CpuBackend()).PruneSequential(seq, calib, g, metric, PruneTarget.Unstructured(0.5));
            var b = new Pruner(new CpuBackend()).PruneOneShot(one, DenseX.Compute(one, calib), g, metric, PruneTarget.Unstructured(0.5));
            Assert.True(a.Valid && b.Valid);
            Assert.Equal(0.5, b.Overall, 6);
            Assert.True(SameLinears(seq, one), $"{text}: one-shot and sequential differ although the metric does not use X");
        }
    }

    [Fact]
    public void OneShotUsesTheDenseModelsX()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 22);
        using var dense = Checkpoint.Load(dir);
        var calib = Calib(dense.Config);
        var x = DenseX.Compute(dense, calib);
        foreach (var (layer, kind) in new[] { (0, LinearKind.Q), (1, LinearKind.Q), (1, LinearKind.Down) })
        {
            var want = DenseXPlain(dense, calib, layer, kind);
            var got = x[layer, kind];
            for (int j = 0; j < want.Length; j++) Assert.Equal(want[j], got[j], 1e-4 * Math.Max(1, Math.Abs(want[j])));
        }

        // With wanda, block 0 is the same either way (same inputs); later blocks differ, since sequential
        // measures X after block 0 is pruned and one-shot does not.
        using var seq = Checkpoint.Load(dir);
        using var one = Checkpoint.Load(dir);
        new Pruner(new CpuBackend()).PruneSequential(seq, calib, null, Metrics.Wanda, PruneTarget.Unstructured(0.5));
        new Pruner(new CpuBackend()).PruneOneShot(one, x, null, Metrics.Wanda, PruneTarget.Unstructured(0.5));
        Assert.True(SameLinears(seq, one, block: 0));
        Assert.False(SameLinears(seq, one, block: 1));
    }

    static (string Wiki, string Calib) Data()
    {
        string d = TestCheckpoints.TempDir("session-data");
        string text = string.Concat(Enumerable.Range(0, 40).Select(i => $" = S {i} = \n \n The {i} brown foxes jump over {i * 3} dogs . \n"));
        File.WriteAllText(Path.Combine(d, "wiki.test.raw"), text);
        File.WriteAllText(Path.Combine(d, "calib.txt"), text.Replace("brown", "grey"));
        return (Path.Combine(d, "wiki.test.raw"), Path.Combine(d, "calib.txt"));
    }

    [Fact]
    public void DenseWeightsAreRestoredBetweenMetrics()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 23);
        var (wiki, calib) = Data();
        var o = new SessionOptions
        {
            ModelDir = dir, CalibPath = calib, EvalPath = wiki, NSamples = 2, Seqlen = 32, Sampling = CalibSampling.Stride,
            CacheDir = TestCheckpoints.TempDir("cache"),
        };
        using var fresh = Checkpoint.Load(dir);
        using var s = new PruneSession(o, TextWriter.Null);
        using var t = new PruneSession(o, TextWriter.Null);
        var target = PruneTarget.Unstructured(0.5);

        s.Prune(Metrics.Magnitude, target, new CpuBackend());
        Assert.False(SameLinears(s.Model, fresh));
        s.RestoreDense();
        Assert.True(SameLinears(s.Model, fresh), "RestoreDense did not give back the checkpoint's weights");

        // A metric after another gives what it gives on a fresh session, in both protocols.
        s.Prune(Metrics.Magnitude, target, new CpuBackend());
        s.Prune(Metrics.PrunerZero, target, new CpuBackend());
        t.Prune(Metrics.PrunerZero, target, new CpuBackend());
        Assert.True(SameLinears(s.Model, t.Model));
        s.PruneOneShot(Metrics.Magnitude, target, new CpuBackend());
        s.PruneOneShot(Metrics.Wanda, target, new CpuBackend());
        t.PruneOneShot(Metrics.Wanda, target, new CpuBackend());
        Assert.True(SameLinears(s.Model, t.Model));
    }

    [Fact]
    public void GradientCacheKeyFollowsModelContentAndCalibrationWindows()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 24);
        var cfg = LlamaConfig.Load(Path.Combine(dir, "config.json"));
        var calib = Calib(cfg);
        string key = GradientStats.CacheKey(ContentHash.OfCheckpoint(dir), calib);
        Assert.Equal(key, GradientStats.CacheKey(ContentHash.OfCheckpoint(dir), Calib(cfg)));   // same content, same windows

        // Another window (same count, same length, same description): another key.
        var other = calib with { Windows = [.. calib.Windows.Select(w => (long[])w.Clone())] };
        other.Windows[1][3] = (other.Windows[1][3] + 1) % cfg.VocabSize;
        Assert.Equal(calib.Describe(), other.Describe());
        Assert.NotEqual(key, GradientStats.CacheKey(ContentHash.OfCheckpoint(dir), other));

        // One weight byte changed, with the file's size and time stamp kept (cp -p, touch -r): another key.
        string f = Path.Combine(dir, "model.safetensors");
        var stamp = File.GetLastWriteTimeUtc(f);
        var bytes = File.ReadAllBytes(f);
        bytes[^5] ^= 0x40;
        File.WriteAllBytes(f, bytes);
        File.SetLastWriteTimeUtc(f, stamp);
        Assert.NotEqual(key, GradientStats.CacheKey(ContentHash.OfCheckpoint(dir), calib));

        // The same content in another folder is the same model.
        string copy = TestCheckpoints.TempDir("copy");
        foreach (var file in Directory.GetFiles(dir)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        Assert.Equal(GradientStats.CacheKey(ContentHash.OfCheckpoint(dir), calib), GradientStats.CacheKey(ContentHash.OfCheckpoint(copy), calib));
    }

    /// <summary>Splits model.safetensors into two shards with an index, as transformers writes them.</summary>
    static void Shard(string dir)
    {
        string single = Path.Combine(dir, "model.safetensors");
        var (entries, start) = SafeTensors.ReadHeader(single);
        var tensors = entries.Select(e => (e.Name, SafeTensors.Read(e, start))).ToList();
        int half = tensors.Count / 2;
        var map = new JsonObject();
        string[] names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
        SafeTensors.Write(Path.Combine(dir, names[0]), tensors[..half]);
        SafeTensors.Write(Path.Combine(dir, names[1]), tensors[half..]);
        for (int i = 0; i < tensors.Count; i++) map[tensors[i].Name] = names[i < half ? 0 : 1];
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        foreach (var (_, t) in tensors) t.Dispose();
        File.Delete(single);
    }

    [Fact]
    public void ShardedCheckpointLoadsTheSameModel()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 25);
        string sharded = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 25);
        Shard(sharded);
        using var a = Checkpoint.Load(dir);
        using var b = Checkpoint.Load(sharded);
        var ta = a.NamedTensors().ToList();
        var tb = b.NamedTensors().ToDictionary(t => t.Name, t => t.Tensor);
        Assert.Equal(ta.Count, tb.Count);
        foreach (var (name, t) in ta) Assert.True(Equal(t, tb[name]), name);
        Checkpoint.RestoreLinears(b, sharded);   // restoring reads the shards too
        Assert.True(SameLinears(a, b));
    }

    [Fact]
    public void ShardIndexNamesAreUntrusted()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 26);
        Shard(dir);
        string index = Path.Combine(dir, "model.safetensors.index.json");
        var good = File.ReadAllText(index);

        void Expect(string json, string message)
        {
            File.WriteAllText(index, json);
            var ex = Assert.Throws<PrunerZeroException>(() => Checkpoint.Load(dir));
            Assert.Contains(message, ex.Message);
        }
        var root = JsonNode.Parse(good)!.AsObject();
        var map = root["weight_map"]!.AsObject();
        string first = map.First().Key;

        map[first] = "../" + map[first]!.GetValue<string>();
        Expect(root.ToJsonString(), "plain file names");
        map[first] = Path.Combine(dir, "model-00001-of-00002.safetensors");   // absolute, even pointing inside
        Expect(root.ToJsonString(), "plain file names");
        map[first] = 7;
        Expect(root.ToJsonString(), "is not a file name");
        map[first] = "missing.safetensors";
        Expect(root.ToJsonString(), "not found");

        // The same tensor in two shards is refused, not silently taken from one of them.
        map[first] = "model-00001-of-00002.safetensors";
        var (entries, start) = SafeTensors.ReadHeader(Path.Combine(dir, "model-00001-of-00002.safetensors"));
        using (var t = SafeTensors.Read(entries[0], start))
        {
            var (e2, s2) = SafeTensors.ReadHeader(Path.Combine(dir, "model-00002-of-00002.safetensors"));
            var second = e2.Select(e => (e.Name, SafeTensors.Read(e, s2))).Append((entries[0].Name, t)).ToList();
            SafeTensors.Write(Path.Combine(dir, "model-00002-of-00002.safetensors"), second);
        }
        Expect(root.ToJsonString(), "is stored twice");
    }
}
