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

/// <summary>Outcome of one evaluation. Perplexity is meaningful only when Valid.</summary>
public sealed record FitnessResult(bool Valid, double Perplexity, string? InvalidReason, double Seconds)
{
    /// <summary>Who evaluated it (a cluster worker's name); null for an evaluation in this process. Recorded, not compared.</summary>
    public string? Worker { get; init; }

    public static FitnessResult Invalid(string reason, double seconds = 0) => new(false, double.NaN, reason, seconds);

    /// <summary>Sort key: invalid or non-finite results rank after every valid one.</summary>
    public double Key => Valid && double.IsFinite(Perplexity) ? Perplexity : double.PositiveInfinity;
}
