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
    /// Token offsets of the windows <see cref="Evaluate"/> takes: all of them, the first K, or with <paramref name="spread"/>
    /// K windows evenly spaced over the text (window j·n/K), which a search screens candidates with.
    /// </summary>
    public static long[] WindowStarts(long tokens, int seqlen, string dataset, int? maxWindows, bool spread)
    {
        int total = WindowCount(tokens, seqlen, dataset), windows = total;
        if (maxWindows is int k)
        {
            if (k <= 0) throw new PrunerZeroException($"{UserError.P("windows")} must be positive, got {k}");
            windows = Math.Min(windows, k);
        }
        return [.. Enumerable.Range(0, windows).Select(w => (spread ? (long)w * total / windows : w) * seqlen)];
    }

    /// <summary>
    /// <paramref name="maxWindows"/> = K evaluates K windows: the first K, or with <paramref name="spread"/> K windows
    /// evenly spaced over the text (<see cref="WindowStarts"/>). The windows' NLL sums are added in window order.
    /// </summary>
    public static PerplexityResult Evaluate(LlamaModel model, string modelName, int[] tokens, long textBytes, string dataset,
        int seqlen, int? maxWindows = null, IProgress<string>? progress = null, bool spread = false)
    {
        CheckSeqlen(model, seqlen);
        var starts = WindowStarts(tokens.Length, seqlen, dataset, maxWindows, spread);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var nll = WindowNll(model, tokens, seqlen, starts, order: null, proceed: (seen, sum) =>
        {
            progress?.Report($"window {seen}/{starts.Length}: running perplexity {Math.Exp(sum / ((long)seen * (seqlen - 1))):0.000} ({sw.Elapsed.TotalSeconds:0.0} s)");
            return true;
        });
        double mean = SumInOrder(nll) / ((long)starts.Length * (seqlen - 1));
        double bpb = mean / Math.Log(2) * tokens.Length / textBytes;
        return new PerplexityResult(modelName, dataset, seqlen, starts.Length, (long)starts.Length * seqlen, tokens.Length, textBytes,
            mean, Math.Exp(mean), bpb, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The windows' NLL sums added in window order (the order that defines a perplexity's last bits).</summary>
    public static double SumInOrder(ReadOnlySpan<double> windowNll)
    {
        double sum = 0;
        foreach (double v in windowNll) sum += v;
        return sum;
    }

    /// <summary>The token ids (B, seqlen) of the windows at <paramref name="starts"/>[w] for each w of <paramref name="windows"/>, in that order.</summary>
    public static Tensor WindowIds(int[] tokens, int seqlen, IReadOnlyList<long> starts, IReadOnlyList<int> windows)
    {
        var ids = new long[windows.Count * seqlen];
        for (int i = 0; i < windows.Count; i++)
        {
            int start = checked((int)starts[windows[i]]);
            for (int j = 0; j < seqlen; j++) ids[i * seqlen + j] = tokens[start + j];
        }
        return tensor(ids, [windows.Count, seqlen]);
    }

    public static void CheckSeqlen(LlamaModel model, int seqlen)
    {
        if (seqlen > model.Config.MaxPositionEmbeddings)
            throw new PrunerZeroException($"seqlen {seqlen} exceeds the model's max_position_embeddings {model.Config.MaxPositionEmbeddings}");
    }

    /// <summary>
    /// Activation bytes one forward may use for a batch of windows: windows are batched up to this, and never split.
    /// Measured on the embedded model at 2 threads (`bench`): 4 windows (78 MB) ran 1.3x faster than 1, and 8 slower
    /// than 4 (the logits and their log-softmax no longer stay in cache). A 7B model at seqlen 2048 gets 1.
    /// </summary>
    public const long BatchActivationBytes = 80L << 20;

    /// <summary>Windows per forward for this model and seqlen: as many as fit <see cref="BatchActivationBytes"/>, at most 8, at least 1.</summary>
    public static int WindowBatch(LlamaConfig c, int seqlen) =>
        (int)Math.Clamp(BatchActivationBytes / Math.Max(1, LlamaModel.ActivationBytes(c, seqlen)), 1, 8);

    /// <summary>
    /// Next-token NLL sum (nats, seqlen − 1 predictions) of each window, evaluated in <paramref name="order"/> (indices into
    /// <paramref name="starts"/>; null: 0, 1, 2, …), <see cref="WindowBatch"/> windows per forward. Each window's value is
    /// its own cross-entropy sum, the same in any batch. After every forward <paramref name="proceed"/> gets the count
    /// seen and their NLL sum so far (in evaluation order) and may stop the evaluation: windows not evaluated stay NaN.
    /// </summary>
    public static double[] WindowNll(LlamaModel model, int[] tokens, int seqlen, IReadOnlyList<long> starts, IReadOnlyList<int>? order,
        Func<int, double, bool>? proceed = null, int? batch = null)
    {
        CheckSeqlen(model, seqlen);
        order ??= [.. Enumerable.Range(0, starts.Count)];
        int b = batch ?? WindowBatch(model.Config, seqlen);
        var nll = new double[starts.Count];
        Array.Fill(nll, double.NaN);
        double sum = 0;
        int seen = 0;
        using (Nvtx.Range("evaluation"))
        using (NativeHeap.ReuseForForward())
        using (no_grad())
            while (seen < order.Count)
            {
                int n = Math.Min(b, order.Count - seen);
                using (var scope = NewDisposeScope())
                {
                    var idt = WindowIds(tokens, seqlen, starts, order.Skip(seen).Take(n).ToArray());
                    var logits = model.Forward(idt);
                    for (int i = 0; i < n; i++)
                    {
                        var loss = nn.functional.cross_entropy(logits[i, ..^1, ..], idt[i, 1..].to(logits.device), reduction: nn.Reduction.Sum);
                        double v = loss.to(ScalarType.Float64).item<double>();
                        nll[order[seen + i]] = v;
                        sum += v;
                    }
                }
                seen += n;
                if (proceed is not null && !proceed(seen, sum)) break;
            }
        return nll;
    }

    /// <summary>Mean next-token NLL of the model as it is now over token windows (e.g. calibration windows), each on its own.</summary>
    public static double MeanNll(LlamaModel model, IEnumerable<long[]> windows)
    {
        double sumNll = 0;
        long count = 0;
        using (Nvtx.Range("evaluation"))
        using (NativeHeap.ReuseForForward())
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
