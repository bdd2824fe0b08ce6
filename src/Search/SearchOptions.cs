// Parameters of a search run and the results it hands back. Defaults are the paper's settings.
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public sealed record SearchOptions
{
    /// <summary>Directory holding search.db and the report files. Created if missing.</summary>
    public required string RunDir { get; init; }
    public int Population { get; init; } = 50;
    /// <summary>Children to generate after the initial population (one child per iteration, Algorithm 1).</summary>
    public int Iterations { get; init; } = 300;
    /// <summary>Tree height bounds (a terminal has height 0), applied to every tree the GP operators generate.</summary>
    public int MinHeight { get; init; } = 3;
    public int MaxHeight { get; init; } = 5;
    /// <summary>Parents are drawn uniformly from the TopK best members of the population.</summary>
    public int TopK { get; init; } = 10;
    /// <summary>Probability that a child is mutated after crossover.</summary>
    public double Mutation { get; init; } = 0.5;
    public long Seed { get; init; }
    /// <summary>Continue the run stored in RunDir (refused if its parameters differ).</summary>
    public bool Resume { get; init; }
    /// <summary>Free-form description of the target (e.g. "sparsity=0.5" or "nm=2:4"); part of the run's identity.</summary>
    public string Protocol { get; init; } = "";
    /// <summary>
    /// What the fitness reads, by content (e.g. "model_sha256" → hash of the checkpoint files, "dataset_sha256",
    /// "calibration_sha256"); part of the run's identity, so a resume on other data with the same names is refused.
    /// </summary>
    public IReadOnlyDictionary<string, string> Inputs { get; init; } = new Dictionary<string, string>();
    /// <summary>Fresh tries per child before an iteration is given up (duplicates, constants, out-of-bounds trees).</summary>
    public int MaxAttempts { get; init; } = 200;
    /// <summary>How many leaders are re-checked with the full fitness and reported.</summary>
    public int ReportTop { get; init; } = 10;
    /// <summary>Evaluate magnitude, wanda and pruner-zero through the same fitness at the end.</summary>
    public bool Baselines { get; init; } = true;
    /// <summary>
    /// Stored parameter values written by earlier versions, mapped to today's form before the comparison (a resume
    /// whose upgraded value equals today's stores today's); keyed by parameter name.
    /// </summary>
    public IReadOnlyDictionary<string, Func<string, string>> Upgrades { get; init; } = new Dictionary<string, Func<string, string>>();

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(RunDir)) throw new ArgumentException("RunDir is required (--run DIR)");
        if (Population < 1) throw new ArgumentException($"population must be at least 1, got {Population}");
        if (Iterations < 0) throw new ArgumentException($"iterations must be >= 0, got {Iterations}");
        Trees.CheckBounds(MinHeight, MaxHeight);
        if (TopK < 1) throw new ArgumentException($"top-k must be at least 1, got {TopK}");
        if (!(Mutation >= 0 && Mutation <= 1)) throw new ArgumentException($"mutation must be a probability in [0, 1], got {Mutation}");
        if (MaxAttempts < 1) throw new ArgumentException($"MaxAttempts must be at least 1, got {MaxAttempts}");
        if (ReportTop < 1) throw new ArgumentException($"ReportTop must be at least 1, got {ReportTop}");
    }
}

/// <summary>One evaluated candidate. Expr is the canonical (OOS) form, the one that was evaluated.</summary>
public sealed record CandidateResult(
    long Id, Expr Expr, string Generated, int Iteration, long? Parent1, long? Parent2,
    FitnessResult Screen, FitnessResult? Full);

public sealed record BaselineResult(string Name, Expr Expr, FitnessResult Screen, FitnessResult Full);

/// <summary>State after an iteration (0 = initial population). Counts are cumulative over the logical run.</summary>
public sealed record HistoryPoint(
    int Iteration, double Best, double Median, int PopulationSize,
    int Evaluations, int Duplicates, int Skipped)
{
    /// <summary>Evaluations so far that copied an earlier one's fitness because their masks were the same (no forward pass).</summary>
    public int SameMask { get; init; }
    /// <summary>Evaluations so far whose screen stopped early (<see cref="FitnessResult.Cut"/>): no perplexity, never members.</summary>
    public int Cut { get; init; }
}

/// <param name="Top">The leaders by screen fitness, each re-checked with Full.</param>
/// <param name="Best">The leader with the best Full perplexity (by screen if no Full result is valid).</param>
/// <param name="FitnessCalls">Screen evaluations this process asked the fitness for (a resumed run: only the missing ones).</param>
/// <param name="Evaluations">Distinct candidates evaluated by the logical run (stored and new).</param>
/// <param name="CacheHits">Children rejected before evaluation because their canonical form was already evaluated.</param>
/// <param name="Files">Report files written into the run directory, by kind (db, history, plot, best-json, ...).</param>
public sealed record SearchReport(
    IReadOnlyList<CandidateResult> Top,
    CandidateResult? Best,
    IReadOnlyList<BaselineResult> Baselines,
    IReadOnlyList<CandidateResult> Population,
    IReadOnlyList<HistoryPoint> History,
    int FitnessCalls,
    int Evaluations,
    int CacheHits,
    IReadOnlyDictionary<string, string> Files)
{
    /// <summary>Which cluster worker evaluated what (empty for a single-process run).</summary>
    public IReadOnlyList<WorkerAssignment> Workers { get; init; } = [];
    /// <summary>The leaders and baselines on each transfer model, in the order given; empty without one (filled by the caller, not by SearchRun).</summary>
    public IReadOnlyList<TransferReport> Transfers { get; init; } = [];
    /// <summary>Evaluations (of Evaluations) whose masks equalled an earlier one's: fitness copied, no forward pass.</summary>
    public int SameMask { get; init; }
    /// <summary>How masks were fingerprinted; null when the fitness makes no fingerprints (e.g. a cluster).</summary>
    public string? FingerprintMethod { get; init; }
    /// <summary>Evaluations (of Evaluations) whose screen stopped early because the child could not enter the population.</summary>
    public int Cut { get; init; }
    /// <summary>
    /// Tokens of every forward pass the run's results took (screens, full re-checks, baselines; stored ones included, so a
    /// resumed run counts the whole run); results stored by a version that did not count them add 0.
    /// </summary>
    public long ForwardTokens { get; init; }
}
