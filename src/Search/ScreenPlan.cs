// When a screen may stop before its last window. A child matters only if its screen perplexity is strictly below the
// bar (the population's worst), and the screen perplexity is exp(Σ window NLL / all tokens) with every window's NLL ≥ 0.
//
// Exact rejection: once the NLL of the windows seen reaches ln(bar) · all tokens, no window still to come can bring the
// perplexity under the bar: stop. The decision needs no approximation; the margin of 1e-9 (relative) covers the other
// order of summation (the reported value adds the windows in window order, the test adds them as evaluated: the two
// differ by far less than 128 · 2⁻⁵³ relative) and a window's float NLL a hair below 0. The windows go in the order of
// the dense model's NLL, highest first, so the bound grows fastest.
//
// Stages (opt-in, an estimate, not a proof): after stage k's windows (an evenly spread subset of the screen), the rest is
// estimated from the dense model's NLL on it plus the child's mean excess over the dense model on the windows seen; the
// child stops when that estimate, less Z standard errors of the mean excess (with the finite-population correction), is
// still at or above the bar. A child that passes every stage is evaluated on every window, to the exact screen value.
namespace PrunerZero.Search;

public sealed class ScreenPlan
{
    /// <summary>Standard errors of the margin a stage keeps before it screens a child out.</summary>
    public const double Z = 3.0;
    const double Slack = 1e-9;

    readonly double[] _dense;
    readonly long _tokensPerWindow;

    /// <param name="denseNll">The dense model's NLL sum of each screen window (window order).</param>
    /// <param name="tokensPerWindow">Predictions per window (seqlen − 1).</param>
    /// <param name="stages">Windows seen at the end of each stage, increasing, the last = all windows; null or one entry: no stages.</param>
    public ScreenPlan(double[] denseNll, long tokensPerWindow, IReadOnlyList<int>? stages)
    {
        ArgumentNullException.ThrowIfNull(denseNll);
        int n = denseNll.Length;
        if (n == 0) throw new ArgumentException("a screen needs at least one window", nameof(denseNll));
        _dense = denseNll;
        _tokensPerWindow = tokensPerWindow;
        Stages = stages is { Count: > 0 } ? [.. stages] : [n];
        CheckStages(Stages, n);
        // Stage k adds the windows of an even spread of its size (window j·n/size) not taken by an earlier stage, highest
        // dense NLL first. Spreads need not nest, so a stage can end past its size; the last (all windows) ends at n.
        var order = new List<int>();
        var ends = new List<int>();
        var taken = new bool[n];
        foreach (int size in Stages)
        {
            var add = Enumerable.Range(0, size).Select(j => (int)((long)j * n / size)).Where(w => !taken[w]).ToList();
            foreach (int w in add) taken[w] = true;
            order.AddRange(add.OrderByDescending(w => denseNll[w]).ThenBy(w => w));
            ends.Add(order.Count);
        }
        Order = order;
        StageEnds = ends;
    }

    /// <summary>Stage sizes as given (the last is the screen's window count).</summary>
    public IReadOnlyList<int> Stages { get; }

    /// <summary>Windows evaluated by the end of each stage (positions in <see cref="Order"/>).</summary>
    public IReadOnlyList<int> StageEnds { get; }

    /// <summary>The order the windows are evaluated in (indices into the screen's windows).</summary>
    public IReadOnlyList<int> Order { get; }

    public int Windows => _dense.Length;

    public bool Staged => Stages.Count > 1;

    /// <summary>Refuses stage lists that are not increasing, start below 2 (a spread needs two windows) or do not end at the screen's windows.</summary>
    public static void CheckStages(IReadOnlyList<int> stages, int windows)
    {
        for (int i = 0; i < stages.Count; i++)
        {
            if (stages[i] < 2 && stages.Count > 1) throw new ArgumentException($"every stage needs at least 2 windows (an estimate's spread), got {stages[i]}");
            if (i > 0 && stages[i] <= stages[i - 1]) throw new ArgumentException($"stages must increase, got {string.Join(",", stages)}");
        }
        if (stages[^1] != windows)
            throw new ArgumentException($"the last stage must be the screen's {windows} windows, got {stages[^1]}");
    }

    /// <summary>
    /// Exact rejection after <paramref name="seen"/> windows (in <see cref="Order"/>) whose NLL adds to <paramref name="sum"/>:
    /// the cut when the screen perplexity is proven at or above <paramref name="bar"/>, else null.
    /// </summary>
    public ScreenCut? Bound(int seen, double sum, double bar)
    {
        if (seen >= Windows || !(bar < double.PositiveInfinity)) return null;
        double all = (double)Windows * _tokensPerWindow;
        double need = Math.Log(bar) * all;
        if (!(sum >= need + Math.Abs(need) * Slack)) return null;   // NaN never cuts: the screen runs on and reports it
        return new ScreenCut(CutKind.Bound, Math.Exp(sum / all), bar, seen, Windows);
    }

    /// <summary>
    /// The stage decision at the end of a stage (not the last): the cut when the estimate of the whole screen, less
    /// <see cref="Z"/> standard errors, is at or above <paramref name="bar"/>, else null. <paramref name="nll"/> holds the
    /// child's NLL of the windows seen (the first <paramref name="seen"/> of <see cref="Order"/>).
    /// </summary>
    public ScreenCut? Stage(double[] nll, int seen, double bar)
    {
        if (seen >= Windows || seen < 2 || !(bar < double.PositiveInfinity)) return null;
        double sumSeen = 0, meanExcess = 0;
        for (int i = 0; i < seen; i++)
        {
            int w = Order[i];
            sumSeen += nll[w];
            meanExcess += nll[w] - _dense[w];
        }
        meanExcess /= seen;
        double var = 0, denseRest = 0;
        for (int i = 0; i < seen; i++) { double d = nll[Order[i]] - _dense[Order[i]] - meanExcess; var += d * d; }
        var /= seen - 1;
        for (int i = seen; i < Windows; i++) denseRest += _dense[Order[i]];
        int rest = Windows - seen;
        double estimate = sumSeen + denseRest + rest * meanExcess;
        double se = rest * Math.Sqrt(var / seen * (1 - (double)seen / Windows));
        double all = (double)Windows * _tokensPerWindow;
        double low = estimate - Z * se;
        if (!(low >= Math.Log(bar) * all)) return null;
        return new ScreenCut(CutKind.Stage, Math.Exp(low / all), bar, seen, Windows);
    }
}
