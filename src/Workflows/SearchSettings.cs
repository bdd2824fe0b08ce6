using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Workflows;

/// <summary>Everything `search` runs with (the CLI builds it from its options).</summary>
public sealed record SearchSettings
{
    /// <summary>Model, data, calibration, G cache and device of the search model (EvalWindows unused: the fitness picks its windows).</summary>
    public required SessionOptions Session { get; init; }
    public required PruneTarget Target { get; init; }
    /// <summary>Run folder: search.db and the report files.</summary>
    public required string RunDir { get; init; }
    public int Population { get; init; } = 50;
    public int Iterations { get; init; } = 300;
    public int MinDepth { get; init; } = 3;
    public int MaxDepth { get; init; } = 5;
    public int TopK { get; init; } = 10;
    public double Mutation { get; init; } = 0.5;
    public long Seed { get; init; }
    public bool Resume { get; init; }
    public int ScreenWindows { get; init; } = 16;
    /// <summary>Staged screening: windows seen at the end of each stage, the last = ScreenWindows; empty: exact screens only.</summary>
    public IReadOnlyList<int> Stages { get; init; } = [];
    public int ReportTop { get; init; } = 10;
    public int Batch { get; init; } = 1;
    /// <summary>Evaluate on this cluster's workers (a ClusterSpec); null: in this process.</summary>
    public string? Cluster { get; init; }
    /// <summary>With a cluster: seconds to wait for a compatible worker.</summary>
    public int Wait { get; init; } = 300;
    /// <summary>Other checkpoints the leaders and baselines are evaluated on at the end.</summary>
    public IReadOnlyList<string> TransferModels { get; init; } = [];
}
