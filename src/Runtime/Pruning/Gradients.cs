using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// G of Pruner-Zero: per weight of every prunable linear layer, sqrt(Σ over calibration windows of
/// (100 · ∂L/∂w)²), where L is the window's mean next-token loss on the dense model. Computed once per
/// model + calibration set and cached on disk as float32 safetensors; a cached G is read layer by layer
/// when pruning asks for it, never held whole (G is as large as the linears in float32).
///
/// Computed block by block (<see cref="ComputeBlockwise"/>), so memory holds one half-block's weights,
/// gradients and accumulators at a time, never the whole model's: one forward pass keeps each block's input
/// hidden states for every window (float32), the head gives each window's ∂L/∂h at the top, then from the
/// top down each block's two halves (MLP, then attention) are recomputed per window with gradients on their
/// weights, (100·g)² is accumulated in float32 per window and the input gradient is passed down. The MLP half,
/// the larger, is worked on in parts along its intermediate dimension (<see cref="MlpPartWeights"/>). The
/// gradient of each window is its own (Σ over windows of g², not (Σ g)²), as in the whole-model backward.
/// </summary>
public sealed class GradientStats : IDisposable
{
    public const float Scale = 100f;
    readonly Dictionary<(int Layer, LinearKind Kind), Tensor>? _g;
    readonly Dictionary<string, SafeTensorEntry>? _file;
    readonly long _dataStart;

    GradientStats(Dictionary<(int, LinearKind), Tensor> g) => _g = g;

    GradientStats(Dictionary<string, SafeTensorEntry> file, long dataStart)
    {
        _file = file;
        _dataStart = dataStart;
    }

    /// <summary>G of one layer, float32 on the CPU: a new handle in the current dispose scope (read from the cache file when G lives there).</summary>
    public Tensor this[int layer, LinearKind kind] =>
        _g != null ? _g[(layer, kind)].alias() : SafeTensors.Read(_file![Name(layer, kind)], _dataStart);

    static string Name(int layer, LinearKind k) => $"model.layers.{layer}.{k.HfName()}.weight";

    /// <summary>G held in memory (small models and tests).</summary>
    public static GradientStats Compute(LlamaModel model, CalibrationSet calib, IProgress<string>? progress = null, long mlpPartWeights = MlpPartWeights)
    {
        var g = new Dictionary<(int, LinearKind), Tensor>();
        ComputeBlockwise(model, calib, (i, k, t) => g[(i, k)] = t.cpu().clone().DetachFromDisposeScope(), progress, mlpPartWeights);
        return new GradientStats(g);
    }

    /// <summary>
    /// Computes G block by block (see the class summary) and hands each layer's G (float32) to
    /// <paramref name="sink"/> as soon as it is final, top block first; the tensor is disposed after the call.
    /// </summary>
    public static void ComputeBlockwise(LlamaModel model, CalibrationSet calib, Action<int, LinearKind, Tensor> sink, IProgress<string>? progress = null,
                                        long mlpPartWeights = MlpPartWeights)
    {
        int n = calib.NSamples, layers = model.Blocks.Count;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var range = Kernels.Nvtx.Range("gradients");
        // inputs[i][j]: block i's input for window j; inputs[layers][j]: the last block's output.
        var inputs = new Tensor[layers + 1][];
        var grads = new Tensor[n];   // ∂L_j/∂(hidden states at the current level), per window
        Tensor? cos = null, sin = null;
        try
        {
            using (no_grad())
            {
                var (c, s) = model.Rope(calib.Seqlen);
                cos = c.DetachFromDisposeScope();
                sin = s.DetachFromDisposeScope();
                inputs[0] = new Tensor[n];
                for (int j = 0; j < n; j++)
                {
                    using var scope = NewDisposeScope();
                    inputs[0][j] = model.EmbedTokens(tensor(calib.Windows[j], [1, calib.Seqlen])).DetachFromDisposeScope();
                }
                for (int i = 0; i < layers; i++)
                {
                    progress?.Report($"gradients: forward block {i + 1}/{layers} ({sw.Elapsed.TotalSeconds:0.0} s)");
                    using var scope = NewDisposeScope();
                    var working = model.Blocks[i].Float32();
                    inputs[i + 1] = new Tensor[n];
                    for (int j = 0; j < n; j++)
                    {
                        using var inner = NewDisposeScope();
                        inputs[i + 1][j] = model.BlockForward(working, inputs[i][j], cos, sin).DetachFromDisposeScope();
                    }
                }
            }

            // The top: final norm, head and each window's mean next-token loss.
            progress?.Report($"gradients: head ({sw.Elapsed.TotalSeconds:0.0} s)");
            using (var scope = NewDisposeScope())
            {
                var norm = LlamaModel.AsFloat32(model.Norm).detach();
                var head = LlamaModel.AsFloat32(model.LmHead).detach();
                for (int j = 0; j < n; j++)
                {
                    using var inner = NewDisposeScope();
                    var h = inputs[layers][j].detach().requires_grad_(true);
                    var logits = nn.functional.linear(model.RmsNorm(h, norm), head);
                    long v = logits.shape[^1];
                    var target = tensor(calib.Windows[j][1..], ScalarType.Int64).to(logits.device);
                    var loss = nn.functional.cross_entropy(logits[0, ..^1, ..].reshape(-1, v), target);
                    loss.backward();
                    grads[j] = h.grad!.detach().clone().DetachFromDisposeScope();
                    inputs[layers][j].Dispose();
                }
            }

            for (int i = layers - 1; i >= 0; i--)
            {
                progress?.Report($"gradients: block {i + 1}/{layers} ({sw.Elapsed.TotalSeconds:0.0} s)");
                var block = model.Blocks[i];
                // The MLP half's inputs: the attention half recomputed without gradients.
                var mids = new Tensor[n];
                using (no_grad())
                using (var scope = NewDisposeScope())
                {
                    var w = block.Float32Part(attention: true);
                    for (int j = 0; j < n; j++)
                    {
                        using var inner = NewDisposeScope();
                        mids[j] = model.AttentionHalf(w, inputs[i][j], cos, sin).DetachFromDisposeScope();
                    }
                }
                Mlp(i, block, mids);
                foreach (var m in mids) m.Dispose();
                Attention(i, block, inputs[i]);
                foreach (var t in inputs[i]) t.Dispose();
                inputs[i] = [];
            }

            // The attention half: per window, recompute with gradients on Q, K, V, O, accumulate (100 g)², pass ∂L/∂input down.
            void Attention(int layer, LlamaBlock block, Tensor[] xs)
            {
                using var scope = NewDisposeScope();
                LinearKind[] kinds = [LinearKind.Q, LinearKind.K, LinearKind.V, LinearKind.O];
                var w = block.AttentionFloat32Copy();
                foreach (var k in kinds) w[k].requires_grad_(true);
                var acc = kinds.ToDictionary(k => k, k => zeros_like(w[k]));
                for (int j = 0; j < n; j++)
                {
                    using var inner = NewDisposeScope();
                    var x = xs[j].detach().requires_grad_(true);
                    model.AttentionHalf(w, x, cos!, sin!).backward([grads[j]]);
                    using (no_grad())
                        foreach (var k in kinds) Accumulate(acc[k], w[k]);
                    var down = x.grad!.detach().clone().DetachFromDisposeScope();
                    grads[j].Dispose();
                    grads[j] = down;
                }
                foreach (var k in kinds)
                {
                    w[k].grad?.Dispose();
                    sink(layer, k, acc[k].sqrt_());
                }
            }

            // acc += (100 g)² of one window's gradient on w (no weight-sized temporaries), and the gradient cleared for the next window.
            static void Accumulate(Tensor acc, Tensor w)
            {
                using var scale2 = (Scale * Scale).ToScalar();
                acc.addcmul_(w.grad!, w.grad!, scale2);
                w.grad!.zero_();
            }

            // The MLP half, h + down(silu(gate x)·up x) with x = RMSNorm(h), in parts along the intermediate dimension:
            // the sum runs over intermediate channels, so a part's weight gradients (rows of gate and up, columns of
            // down) need only that part, and ∂L/∂h = ∂L/∂y (the residual) + Σ over parts of the part's gradient
            // through RMSNorm. Memory holds the three accumulators and one part's float32 weights and gradients.
            void Mlp(int layer, LlamaBlock block, Tensor[] xs)
            {
                using var scope = NewDisposeScope();
                var (parts, width) = MlpParts(block.Gate.shape[0], block.Gate.shape[1], mlpPartWeights);
                var acc = new[] { block.Gate, block.Up, block.Down }.Select(t => zeros(t.shape, ScalarType.Float32, t.device)).ToArray();
                var norm = LlamaModel.AsFloat32(block.PostNorm).detach();
                var next = grads.Select(g => g.clone()).ToArray();   // the residual's share of ∂L/∂h
                for (int p = 0; p < parts; p++)
                {
                    using var part = NewDisposeScope();
                    long start = p * width, len = Math.Min(width, block.Gate.shape[0] - start);
                    static Tensor Leaf(Tensor t) => LlamaModel.Float32Copy(t).requires_grad_(true);
                    var w = new[] { Leaf(block.Gate.narrow(0, start, len)), Leaf(block.Up.narrow(0, start, len)), Leaf(block.Down.narrow(1, start, len)) };
                    var dst = new[] { acc[0].narrow(0, start, len), acc[1].narrow(0, start, len), acc[2].narrow(1, start, len) };
                    for (int j = 0; j < n; j++)
                    {
                        using var inner = NewDisposeScope();
                        var x = xs[j].detach().requires_grad_(true);
                        var h = model.RmsNorm(x, norm);
                        var y = nn.functional.linear(nn.functional.silu(nn.functional.linear(h, w[0])) * nn.functional.linear(h, w[1]), w[2]);
                        y.backward([grads[j]]);
                        using (no_grad())
                        {
                            for (int k = 0; k < 3; k++) Accumulate(dst[k], w[k]);
                            next[j].PlusInPlace(x.grad!);
                        }
                    }
                    foreach (var t in w) t.grad?.Dispose();
                }
                for (int j = 0; j < n; j++)
                {
                    grads[j].Dispose();
                    grads[j] = next[j].DetachFromDisposeScope();
                }
                sink(layer, LinearKind.Gate, acc[0].sqrt_());
                sink(layer, LinearKind.Up, acc[1].sqrt_());
                sink(layer, LinearKind.Down, acc[2].sqrt_());
            }
        }
        finally
        {
            foreach (var level in inputs) if (level != null) foreach (var t in level) t?.Dispose();
            foreach (var t in grads) t?.Dispose();
            cos?.Dispose();
            sin?.Dispose();
        }
    }

    /// <summary>
    /// The MLP half's weights are worked on in parts of at most this many (32 M, 128 MB in float32): one part for
    /// small models, six for LLaMA-7B's 3 × 4096 × 11008, so its G pass holds no more than its attention half does.
    /// </summary>
    public const long MlpPartWeights = 1L << 25;

    /// <summary>How many parts the MLP half (intermediate size F, hidden C) is worked on in, and the width of each but the last.</summary>
    public static (int Parts, long Width) MlpParts(long f, long c, long partWeights)
    {
        int parts = (int)Math.Clamp((3 * f * c + partWeights - 1) / partWeights, 1, f);
        long width = (f + parts - 1) / parts;
        return ((int)((f + width - 1) / width), width);
    }

    /// <summary>
    /// Bytes the G pass holds beside the model: the float32 inputs of every block for every window with the
    /// gradients passed down (two sets) and the MLP's inputs, and the larger of the two halves' working sets
    /// (attention: weights, gradients and accumulators of Q, K, V, O; MLP: three accumulators and one part's
    /// weights and gradients; the top: the head in float32), plus one window's activations.
    /// </summary>
    public static long ComputeBytes(LlamaConfig c, int nsamples, int seqlen)
    {
        long hidden = 4L * nsamples * seqlen * c.HiddenSize;
        long kv = (long)c.NumKvHeads * c.HeadDim, q = (long)c.NumHeads * c.HeadDim;
        long attention = 3 * 4L * c.HiddenSize * (q + 2 * kv + q);
        long mlp = 3L * c.HiddenSize * c.IntermediateSize;
        var (_, width) = MlpParts(c.IntermediateSize, c.HiddenSize, MlpPartWeights);
        long mlpBytes = 4 * mlp + 2 * 4 * 3L * c.HiddenSize * width;
        long head = 4L * c.VocabSize * c.HiddenSize;
        return (c.NumLayers + 4) * hidden + Math.Max(head, Math.Max(attention, mlpBytes)) + LlamaModel.ActivationBytes(c, seqlen);
    }

    /// <summary>Loads G from the cache or computes it block by block into the cache; either way G is then read from the file per layer.</summary>
    /// <param name="modelSha256">The model's <see cref="ContentHash.OfCheckpoint"/> when the caller has it (a <see cref="RunIdentity"/>); hashed here otherwise.</param>
    public static GradientStats LoadOrCompute(LlamaModel model, string modelDir, CalibrationSet calib, string cacheDir,
        IProgress<string>? progress, TextWriter log, string? modelSha256 = null)
    {
        string path = Path.Combine(cacheDir, "gradients", CacheKey(modelSha256 ?? ContentHash.OfCheckpoint(modelDir), calib) + ".safetensors");
        if (File.Exists(path))
        {
            // Verified before every use: a damaged entry would prune with wrong G and report a plausible, wrong number.
            if (SafeTensors.ChecksumProblem(path) is { } problem)
            {
                log.WriteLine($"gradients: cache entry {path} is damaged ({problem}); deleted, recomputing");
                File.Delete(path);
            }
            else log.WriteLine($"gradients: cached {path} (checksum verified)");
        }
        if (!File.Exists(path))
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var specs = new List<TensorSpec>();
            for (int i = 0; i < model.Blocks.Count; i++)
                foreach (var k in LinearKinds.All) specs.Add(new TensorSpec(Name(i, k), "F32", model.Blocks[i][k].shape));
            using (var w = new SafeTensorsWriter(path, specs,
                new Dictionary<string, string> { ["model"] = Path.GetFullPath(modelDir), ["calibration"] = calib.Describe() }, checksum: true))
            {
                ComputeBlockwise(model, calib, (i, k, t) => w.Write(Name(i, k), t), progress);
                w.Complete();
            }
            log.WriteLine($"gradients: computed on {calib.Describe()} in {sw.Elapsed.TotalSeconds:0.0} s, cached {path}");
        }
        var (entries, start) = SafeTensors.ReadHeader(path);
        var byName = entries.ToDictionary(e => e.Name);
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
                if (!byName.TryGetValue(Name(i, k), out var e) || !e.Shape.SequenceEqual(model.Blocks[i][k].shape) || e.DType != "F32")
                    throw new PrunerZeroException($"{path}: gradient cache does not match the model; delete it");
        return new GradientStats(byName, start);
    }

    /// <summary>
    /// Identifies the model by the content of its files (<paramref name="modelSha256"/>: <see cref="ContentHash.OfCheckpoint"/>,
    /// the <see cref="RunIdentity.ModelSha256"/>) and the exact calibration windows. Unchanged since caches were first
    /// written, so existing cache entries keep being found.
    /// </summary>
    public static string CacheKey(string modelSha256, CalibrationSet calib)
    {
        var sb = new StringBuilder();
        sb.Append(modelSha256).Append('\n');
        sb.Append(calib.Describe()).Append('\n');
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(Encoding.UTF8.GetBytes(sb.ToString()));
        foreach (var w in calib.Windows) h.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()));
        return Convert.ToHexString(h.GetHashAndReset())[..24].ToLowerInvariant();
    }

    public void Dispose() { if (_g != null) foreach (var t in _g.Values) t.Dispose(); }
}
