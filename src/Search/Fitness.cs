// The only seam between the search and whatever measures a metric (pruning + perplexity on a model,
// or a synthetic stand-in in tests). Lower perplexity is better.
using PrunerZero.Kernels;

namespace PrunerZero.Search;

/// <summary>
/// Measures a candidate metric. Contract: a metric that cannot be used (non-finite scores, no ranking)
/// comes back as <c>Valid = false</c> with a reason, never as an exception. Exceptions mean the
/// measuring machinery failed (out of memory, missing file); they abort the run, which can then be resumed.
/// Implementations must be safe to call concurrently up to <see cref="MaxParallelism"/> times.
/// </summary>
public interface IFitness
{
    /// <summary>What the numbers mean, recorded in the run database, e.g. "model=..., windows=8, seqlen=256, sparsity=0.5".</summary>
    string Protocol { get; }
    /// <summary>Fast fitness (a subset of WikiText-2 windows); drives the search.</summary>
    FitnessResult Screen(Expr metric, CancellationToken ct);
    /// <summary>
    /// <see cref="Screen(Expr, CancellationToken)"/> for a child that matters only if its perplexity is strictly below
    /// <paramref name="bar"/> (the population's worst; +∞ while the population fills). A fitness may stop once it knows the
    /// child cannot get there and return a result with <see cref="FitnessResult.Cut"/> set; one that cannot stop early
    /// (this default) evaluates the child in full.
    /// </summary>
    FitnessResult Screen(Expr metric, double bar, CancellationToken ct) => Screen(metric, ct);
    /// <summary>Full test split; used to re-check the leaders and the baselines at the end.</summary>
    FitnessResult Full(Expr metric, CancellationToken ct);
    /// <summary>How many Screen calls may run at once. 1 = one child per iteration, strictly sequential.</summary>
    int MaxParallelism { get; }
}

/// <summary>
/// Optional, next to <see cref="IFitness"/>: a cheap fingerprint of the pruning masks a metric makes under the
/// screen protocol (scores and per-row selection only, no forward pass). Two metrics with the same fingerprint
/// prune the same weights, so the search gives the second the first one's fitness without evaluating it.
/// Null when the metric is invalid (it is then evaluated, and fails, as usual). Safe to call concurrently.
/// </summary>
public interface IMaskFingerprint
{
    /// <summary>How fingerprints are made, e.g. "sha256 of packed prune bits, every linear in block/kind order".</summary>
    string FingerprintMethod { get; }
    string? MaskFingerprint(Expr metric, CancellationToken ct);
}

/// <summary>Outcome of one evaluation. Perplexity is meaningful only when Valid and not <see cref="Cut"/>.</summary>
public sealed record FitnessResult(bool Valid, double Perplexity, string? InvalidReason, double Seconds)
{
    /// <summary>Who evaluated it (a cluster worker's name); null for an evaluation in this process. Recorded, not compared.</summary>
    public string? Worker { get; init; }

    /// <summary>Set when a screen stopped before its last window because the child could not beat the bar; Perplexity is then NaN.</summary>
    public ScreenCut? Cut { get; init; }

    /// <summary>Tokens the evaluation ran forward passes on (0: none, or not counted, e.g. a result stored by an older version).</summary>
    public long Tokens { get; init; }

    public static FitnessResult Invalid(string reason, double seconds = 0) => new(false, double.NaN, reason, seconds);

    /// <summary>A screen stopped early: valid metric, no perplexity, never a population member.</summary>
    public static FitnessResult Stopped(ScreenCut cut, double seconds, long tokens) => new(true, double.NaN, null, seconds) { Cut = cut, Tokens = tokens };

    /// <summary>Sort key: invalid, non-finite or cut results rank after every valid one.</summary>
    public double Key => Valid && Cut is null && double.IsFinite(Perplexity) ? Perplexity : double.PositiveInfinity;

    /// <summary>The screen value in words: the perplexity, "≥ bound (…)" for a cut screen, or why it is invalid.</summary>
    public string Describe() =>
        Cut is { } c ? c.Describe()
        : Valid ? Perplexity.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)
        : "invalid: " + InvalidReason;
}

/// <summary>How a screen was cut short.</summary>
public enum CutKind
{
    /// <summary>Exact: the NLL of the windows seen already puts the perplexity at or above the bar, whatever the other windows hold.</summary>
    Bound,
    /// <summary>Staged screening: the estimate from the windows seen, less its margin, is at or above the bar (not a proof).</summary>
    Stage,
}

/// <param name="Bound">
/// Bound: a proven lower bound on the screen perplexity (exp of the NLL seen over all the screen's tokens), at or above
/// the bar. Stage: the estimate's lower end (estimate less the margin), at or above the bar.
/// </param>
/// <param name="Bar">The bar the child had to beat.</param>
/// <param name="WindowsSeen">Windows evaluated before the stop.</param>
/// <param name="Windows">Windows of the whole screen.</param>
public sealed record ScreenCut(CutKind Kind, double Bound, double Bar, int WindowsSeen, int Windows)
{
    public string Describe() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{(Kind == CutKind.Bound ? "rejected: perplexity" : "screened out: estimate less its margin")} ≥ {Bound:0.###} ≥ bar {Bar:0.###} after {WindowsSeen}/{Windows} windows");
}
