using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// G of Pruner-Zero: per weight of every prunable linear layer, sqrt(Σ over calibration windows of
/// (100 · ∂L/∂w)²), where L is the window's mean next-token loss on the dense model. Computed once per
/// model + calibration set and cached on disk as safetensors.
/// </summary>
public sealed class GradientStats : IDisposable
{
    public const float Scale = 100f;
    readonly Dictionary<(int Layer, LinearKind Kind), Tensor> _g;

    GradientStats(Dictionary<(int, LinearKind), Tensor> g) => _g = g;

    public Tensor this[int layer, LinearKind kind] => _g[(layer, kind)];

    static string Name(int layer, LinearKind k) => $"model.layers.{layer}.{k.HfName()}.weight";

    public static GradientStats Compute(LlamaModel model, CalibrationSet calib, IProgress<string>? progress = null)
    {
        var linears = new List<(int, LinearKind, Tensor)>();
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All) linears.Add((i, k, model.Blocks[i][k]));
        var acc = linears.ToDictionary(l => (l.Item1, l.Item2), l => zeros_like(l.Item3).DetachFromDisposeScope());
        foreach (var (_, _, w) in linears) w.requires_grad_(true);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var range = Kernels.Nvtx.Range("gradients");
        try
        {
            for (int j = 0; j < calib.NSamples; j++)
            {
                using var scope = NewDisposeScope();
                var ids = tensor(calib.Windows[j], [1, calib.Seqlen]);
                var loss = model.NextTokenLoss(ids);
                loss.backward();
                using (no_grad())
                {
                    foreach (var (i, k, w) in linears)
                    {
                        acc[(i, k)].add_((w.grad! * Scale).square());
                        w.grad!.zero_();
                    }
                }
                progress?.Report($"gradients: window {j + 1}/{calib.NSamples} ({sw.Elapsed.TotalSeconds:0.0} s)");
            }
        }
        finally
        {
            foreach (var (_, _, w) in linears)
            {
                w.requires_grad_(false);
                w.grad?.Dispose();
            }
        }
        foreach (var t in acc.Values) t.sqrt_();
        return new GradientStats(acc);
    }

    /// <summary>Loads G from the cache or computes and stores it.</summary>
    public static GradientStats LoadOrCompute(LlamaModel model, string modelDir, CalibrationSet calib, string cacheDir,
        IProgress<string>? progress, TextWriter log)
    {
        string path = Path.Combine(cacheDir, "gradients", CacheKey(modelDir, calib) + ".safetensors");
        if (File.Exists(path))
        {
            log.WriteLine($"gradients: cached {path}");
            var (entries, start) = SafeTensors.ReadHeader(path);
            var byName = entries.ToDictionary(e => e.Name);
            var g = new Dictionary<(int, LinearKind), Tensor>();
            for (int i = 0; i < model.Blocks.Count; i++)
                foreach (var k in LinearKinds.All)
                {
                    if (!byName.TryGetValue(Name(i, k), out var e) || !e.Shape.SequenceEqual(model.Blocks[i][k].shape))
                        throw new PrunerZeroException($"{path}: gradient cache does not match the model; delete it");
                    g[(i, k)] = SafeTensors.Read(e, start);
                }
            return new GradientStats(g);
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var stats = Compute(model, calib, progress);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        SafeTensors.Write(path, stats._g.Select(kv => (Name(kv.Key.Layer, kv.Key.Kind), kv.Value)).ToList(),
            new Dictionary<string, string> { ["model"] = Path.GetFullPath(modelDir), ["calibration"] = calib.Describe() });
        log.WriteLine($"gradients: computed on {calib.Describe()} in {sw.Elapsed.TotalSeconds:0.0} s, cached {path}");
        return stats;
    }

    /// <summary>Identifies the model by the content of its files (SHA-256) and the exact calibration windows.</summary>
    public static string CacheKey(string modelDir, CalibrationSet calib)
    {
        var sb = new StringBuilder();
        sb.Append(ContentHash.OfCheckpoint(modelDir)).Append('\n');
        sb.Append(calib.Describe()).Append('\n');
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(Encoding.UTF8.GetBytes(sb.ToString()));
        foreach (var w in calib.Windows) h.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()));
        return Convert.ToHexString(h.GetHashAndReset())[..24].ToLowerInvariant();
    }

    public void Dispose() { foreach (var t in _g.Values) t.Dispose(); }
}
