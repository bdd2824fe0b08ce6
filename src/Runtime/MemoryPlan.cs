using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Runtime;

/// <summary>
/// What pruning a checkpoint will hold in memory, from the real sizes (the checkpoint's tensors as stored,
/// the config's shapes, the calibration and evaluation windows), printed before the work starts, and the
/// refusal when it does not fit the memory available now, naming the flag values that would.
/// Bytes, everything float32 except the weights (held in the checkpoint's dtype).
/// </summary>
public sealed record MemoryPlan(long Weights, long Block, long Calibration, long ChunkActivations, long Evaluation, long Gradients, long Runtime)
{
    /// <summary>The .NET runtime, libtorch and the tokenized text, measured at about this on this machine.</summary>
    public const long RuntimeBytes = 600L << 20;

    /// <summary>Pruning (one block in float32 and the calibration hidden states, old and new while advancing) or evaluation, whichever is larger.</summary>
    public long Peak => Weights + Runtime + Math.Max(Block + 2 * Calibration + ChunkActivations, Evaluation);

    /// <summary>The peak while G is computed block by block (before pruning starts).</summary>
    public long PeakWithG => Math.Max(Peak, Weights + Runtime + Gradients);

    public static MemoryPlan For(LlamaConfig c, long weightBytes, int nsamples, int seqlen)
    {
        long C = c.HiddenSize, F = c.IntermediateSize, H = c.NumHeads, V = c.VocabSize;
        long blockParams = c.BlockParameterCount;
        long chunk = Math.Min(nsamples, BlockActivations.ChunkFor(c, seqlen));
        long perWindow = BlockActivations.WindowActivationBytes(c, seqlen);
        // Evaluation: one window, one block in float32, the head in float32 slices, logits and log-softmax.
        long eval = 4 * blockParams + perWindow + 4L * LlamaModel.HeadSlice * C + 3 * 4L * seqlen * V;
        return new MemoryPlan(weightBytes, 4 * blockParams, BlockActivations.Bytes(c, nsamples, seqlen), chunk * perWindow, eval,
            GradientStats.ComputeBytes(c, nsamples, seqlen), RuntimeBytes);
    }

    public string Describe(bool withG) =>
        $"memory plan: weights {LlamaModel.Gib(Weights)} (as stored) + one block in float32 {LlamaModel.Gib(Block)} + calibration hidden states " +
        $"{LlamaModel.Gib(Calibration)} (x2 while advancing) + block activations {LlamaModel.Gib(ChunkActivations)} per chunk; evaluation {LlamaModel.Gib(Evaluation)}; " +
        $"G (block by block) {LlamaModel.Gib(Gradients)}; runtime {LlamaModel.Gib(Runtime)}; peak {LlamaModel.Gib(withG ? PeakWithG : Peak)}{(withG ? " with G" : $" ({LlamaModel.Gib(PeakWithG)} with G)")}";

    /// <summary>MemAvailable of /proc/meminfo (what can be allocated without swapping), else what the GC sees.</summary>
    public static long AvailableBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    }

    /// <summary>Refuses, in one line, a plan whose peak exceeds <paramref name="available"/>; names an --nsamples or --seqlen that fits, when one does.</summary>
    public static void Check(LlamaConfig c, long weightBytes, int nsamples, int seqlen, bool withG, long available)
    {
        long Peak(int n, int t) { var p = For(c, weightBytes, n, t); return withG ? p.PeakWithG : p.Peak; }
        long need = Peak(nsamples, seqlen);
        if (need <= available) return;
        string what = withG ? "pruning with G" : "pruning";
        string fix;
        int n = nsamples;
        while (n > 1 && Peak(n, seqlen) > available) n /= 2;
        int t = seqlen;
        while (t > 16 && Peak(nsamples, t) > available) t /= 2;
        if (Peak(n, seqlen) <= available) fix = $"{UserError.P("nsamples")} {n} fits";
        else if (Peak(nsamples, t) <= available) fix = $"{UserError.P("seqlen")} {t} fits";
        else fix = $"even {UserError.P("nsamples")} 1 does not fit: the weights alone take {LlamaModel.Gib(weightBytes)}";
        throw new PrunerZeroException($"{what} needs about {LlamaModel.Gib(need)} but {LlamaModel.Gib(available)} is available (nsamples {nsamples}, seqlen {seqlen}); {fix}");
    }
}
