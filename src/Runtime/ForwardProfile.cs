using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>Tokens per second of the evaluation forward with <see cref="Batch"/> windows per forward.</summary>
public sealed record ForwardRate(int Batch, double TokensPerSecond);

/// <summary>
/// Where the evaluation forward's time goes: tokens/s at several window batch sizes, the share of the final norm, head and
/// cross-entropy, and the 2-core floor: the matmul FLOPs a token needs against the FLOP rate libtorch's own sgemm reaches
/// here with the same threads (a dense 2048 × 2048 × 2048 product), which no forward of this model can beat.
/// </summary>
public sealed record ForwardProfile(
    int Threads, long Tokens, IReadOnlyList<ForwardRate> Rates, double HeadShare, double FlopsPerToken, double GemmFlopsPerSecond)
{
    /// <summary>Tokens/s if every matmul ran at sgemm's rate: the floor the forward is measured against.</summary>
    public double CeilingTokensPerSecond => GemmFlopsPerSecond / FlopsPerToken;

    /// <summary>
    /// Matmul FLOPs per token: 2 per weight of the block linears and the head, plus attention's scores and values
    /// (2 · 2 · seqlen · heads · head_dim per block, the full seqlen × seqlen product libtorch computes).
    /// </summary>
    public static double MatmulFlopsPerToken(LlamaConfig c, int seqlen) =>
        2.0 * (c.NumLayers * c.BlockParameterCount + (double)c.VocabSize * c.HiddenSize)
        + c.NumLayers * 4.0 * seqlen * c.NumHeads * c.HeadDim;

    /// <summary>Measures the forward over the windows at <paramref name="starts"/> once per batch size (after one warm-up batch).</summary>
    public static ForwardProfile Measure(LlamaModel model, int[] tokens, int seqlen, IReadOnlyList<long> starts, IReadOnlyList<int> batches)
    {
        var rates = new List<ForwardRate>();
        long n = (long)starts.Count * seqlen;
        foreach (int b in batches)
        {
            Perplexity.WindowNll(model, tokens, seqlen, [.. starts.Take(b)], null, batch: b);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            Perplexity.WindowNll(model, tokens, seqlen, starts, null, batch: b);
            rates.Add(new ForwardRate(b, n / sw.Elapsed.TotalSeconds));
        }
        // The decoder stack alone, at the default batch: the rest of the forward is the final norm, head and cross-entropy.
        int batch = Perplexity.WindowBatch(model.Config, seqlen);
        double full = n / rates.Where(r => r.Batch == batch).Select(r => r.TokensPerSecond).DefaultIfEmpty(double.NaN).First();
        var stack = System.Diagnostics.Stopwatch.StartNew();
        using (no_grad())
            for (int i = 0; i < starts.Count; i += batch)
            {
                using var scope = NewDisposeScope();
                model.HiddenStates(Perplexity.WindowIds(tokens, seqlen, starts, [.. Enumerable.Range(i, Math.Min(batch, starts.Count - i))]));
            }
        double headShare = 1 - stack.Elapsed.TotalSeconds / full;
        return new ForwardProfile(get_num_threads(), n, rates, headShare, MatmulFlopsPerToken(model.Config, seqlen), GemmRate());
    }

    /// <summary>FLOP/s of libtorch's float32 matmul at a size where it runs at its best (2048³, three repeats, best taken).</summary>
    static double GemmRate()
    {
        using var scope = NewDisposeScope();
        const int m = 2048;
        var a = randn(m, m);
        var b = randn(m, m);
        a.matmul(b);
        double best = double.MaxValue;
        for (int r = 0; r < 3; r++)
        {
            using var inner = NewDisposeScope();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            a.matmul(b);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * m * m * m / best;
    }
}
