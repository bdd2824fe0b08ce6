// What travels between the search (an Orleans client) and the workers (Orleans silos). Kept small:
// a metric goes as its prefix text (Expr.ToString, which MetricParser reads back exactly), a result as
// the four fields of a FitnessResult.
using Orleans;

namespace PrunerZero.Cluster;

/// <summary>
/// One per worker silo, placed on that silo (its key is the silo's address, see <see cref="OnSiloPlacementAttribute"/>).
/// Start queues an evaluation and returns at once; Poll reports it. Evaluations take minutes on a large model,
/// far beyond an Orleans call timeout, so the search polls and treats a worker that stops answering as lost.
/// </summary>
public interface IWorkerGrain : IGrainWithStringKey
{
    Task<WorkerInfo> Hello();
    /// <summary>Queues job <paramref name="job"/> (idempotent: a second Start of the same id is ignored).</summary>
    Task Start(Guid job, string metric, bool full);
    Task<JobState> Poll(Guid job);
}

[GenerateSerializer, Immutable]
public sealed class WorkerInfo
{
    [Id(0)] public string Name { get; init; } = "";
    /// <summary>The worker's protocol as key=value pairs separated by '; ' (see <see cref="ProtocolId"/>).</summary>
    [Id(1)] public string Protocol { get; init; } = "";
    [Id(2)] public string Device { get; init; } = "";
    /// <summary>False while the worker still loads the model and measures X and G.</summary>
    [Id(3)] public bool Ready { get; init; }
    /// <summary>Set when loading failed; the worker takes no job.</summary>
    [Id(4)] public string? Error { get; init; }
    [Id(5)] public string FitnessProtocol { get; init; } = "";
}

public enum JobStatus { Unknown, Queued, Running, Done, Failed }

[GenerateSerializer, Immutable]
public sealed class JobState
{
    [Id(0)] public JobStatus Status { get; init; }
    [Id(1)] public bool Valid { get; init; }
    [Id(2)] public double Perplexity { get; init; }
    [Id(3)] public string? InvalidReason { get; init; }
    [Id(4)] public double Seconds { get; init; }
    /// <summary>Failed: what broke on the worker (an exception, not an invalid metric).</summary>
    [Id(5)] public string? Failure { get; init; }
}
