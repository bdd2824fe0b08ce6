using PrunerZero.Kernels;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

public sealed record PerplexityResult(
    string Model, string Dataset, int Seqlen, int Windows, long Tokens, long TextTokens, long TextBytes,
    double MeanNll, double Perplexity, double BitsPerByte, double Seconds)
{
    public string Describe() =>
        $"model={Model} data={Dataset} windows={Windows} seqlen={Seqlen} tokens={Tokens}: perplexity {Perplexity:0.0000}, bits/byte {BitsPerByte:0.0000} ({Seconds:0.0} s)";
}

/// <summary>
/// Perplexity by the protocol of Wanda, SparseGPT and Pruner-Zero: the text tokenized once, cut into
/// non-overlapping windows of seqlen (tail dropped), each window evaluated on its own, perplexity =
/// exp(mean next-token NLL over all windows). Bits per byte converts the same mean NLL with the text's
/// own tokens-per-byte ratio: bpb = meanNLL / ln 2 × (tokens of the whole text / UTF-8 bytes of the text).
/// </summary>
public static class Perplexity
{
    /// <summary>Default window: max_position_embeddings (2048 LLaMA-1, 4096 LLaMA-2), capped at 4096.</summary>
    public static int DefaultSeqlen(LlamaConfig c) => Math.Min(c.MaxPositionEmbeddings, 4096);

    /// <summary>Window count for a token stream; refuses a seqlen longer than the text.</summary>
    public static int WindowCount(long tokens, int seqlen, string dataset)
    {
        if (seqlen < 2) throw new PrunerZeroException($"seqlen must be at least 2, got {seqlen}");
        long n = tokens / seqlen;
        if (n == 0) throw new PrunerZeroException($"seqlen {seqlen} is longer than the text of {dataset} ({tokens} tokens)");
        return (int)Math.Min(n, int.MaxValue);
    }

    /// <summary>
    /// <paramref name="maxWindows"/> = K evaluates K windows: the first K, or with <paramref name="spread"/> K windows
    /// evenly spaced over the text (window j·n/K), which a search screens candidates with.
    /// </summary>
    public static PerplexityResult Evaluate(LlamaModel model, string modelName, int[] tokens, long textBytes, string dataset,
        int seqlen, int? maxWindows = null, IProgress<string>? progress = null, bool spread = false)
    {
        if (seqlen > model.Config.MaxPositionEmbeddings)
            throw new PrunerZeroException($"seqlen {seqlen} exceeds the model's max_position_embeddings {model.Config.MaxPositionEmbeddings}");
        int total = WindowCount(tokens.Length, seqlen, dataset), windows = total;
        if (maxWindows is int k)
        {
            if (k <= 0) throw new PrunerZeroException($"{UserError.P("windows")} must be positive, got {k}");
            windows = Math.Min(windows, k);
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double sumNll = 0;
        long count = 0;
        using (Nvtx.Range("evaluation"))
        using (no_grad())
        {
            for (int w = 0; w < windows; w++)
            {
                using var scope = NewDisposeScope();
                long start = (spread ? (long)w * total / windows : w) * seqlen;
                var ids = tensor(tokens.AsSpan((int)start, seqlen).ToArray().Select(t => (long)t).ToArray(), [1, seqlen]);
                var (s, c) = model.NextTokenNll(ids);
                sumNll += s;
                count += c;
                progress?.Report($"window {w + 1}/{windows}: running perplexity {Math.Exp(sumNll / count):0.000} ({sw.Elapsed.TotalSeconds:0.0} s)");
            }
        }
        double mean = sumNll / count;
        double bpb = mean / Math.Log(2) * tokens.Length / textBytes;
        return new PerplexityResult(modelName, dataset, seqlen, windows, (long)windows * seqlen, tokens.Length, textBytes,
            mean, Math.Exp(mean), bpb, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Mean next-token NLL of the model as it is now over token windows (e.g. calibration windows), each on its own.</summary>
    public static double MeanNll(LlamaModel model, IEnumerable<long[]> windows)
    {
        double sumNll = 0;
        long count = 0;
        using (Nvtx.Range("evaluation"))
        using (no_grad())
            foreach (var w in windows)
            {
                using var scope = NewDisposeScope();
                var (s, c) = model.NextTokenNll(tensor(w, [1, w.Length]));
                sumNll += s;
                count += c;
            }
        if (count == 0) throw new ArgumentException("no tokens to evaluate", nameof(windows));
        return sumNll / count;
    }
}
