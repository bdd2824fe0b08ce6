// What travels between the search (an Orleans client) and the workers (Orleans silos). Kept small:
// a metric goes as its prefix text (Expr.ToString, which MetricParser reads back exactly) with the bar a screen may stop
// at, a result as the fields of a FitnessResult (a screen stopped early carries its cut).
using Orleans;
using PrunerZero.Search;

namespace PrunerZero.Cluster;

/// <summary>
/// One per worker silo, placed on that silo (its key is the silo's address, see <see cref="OnSiloPlacementAttribute"/>).
/// Start queues an evaluation and returns at once; Poll reports it. Evaluations take minutes on a large model,
/// far beyond an Orleans call timeout, so the search polls and treats a worker that stops answering as lost.
/// </summary>
public interface IWorkerGrain : IGrainWithStringKey
{
    Task<WorkerInfo> Hello();
    /// <summary>
    /// Queues job <paramref name="job"/> (idempotent: a second Start of the same id is ignored). A screen may stop once the
    /// child cannot get under <paramref name="bar"/> (+∞: never), as it would in the search's process.
    /// </summary>
    Task Start(Guid job, string metric, bool full, double bar);
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
    /// <summary>Done: tokens of the forward passes it took.</summary>
    [Id(6)] public long Tokens { get; init; }
    /// <summary>Done, stopped early: how (a <see cref="Search.CutKind"/> name); null when the screen ran to its end.</summary>
    [Id(7)] public string? CutKind { get; init; }
    [Id(8)] public double CutBound { get; init; }
    [Id(9)] public double CutBar { get; init; }
    [Id(10)] public int CutWindowsSeen { get; init; }
    [Id(11)] public int CutWindows { get; init; }

    /// <summary>A finished job's state from the fitness result the worker made.</summary>
    public static JobState Done(FitnessResult r, double seconds) => new()
    {
        Status = JobStatus.Done, Valid = r.Valid, Perplexity = r.Perplexity, InvalidReason = r.InvalidReason, Seconds = seconds,
        Tokens = r.Tokens, CutKind = r.Cut?.Kind.ToString(), CutBound = r.Cut?.Bound ?? 0, CutBar = r.Cut?.Bar ?? 0,
        CutWindowsSeen = r.Cut?.WindowsSeen ?? 0, CutWindows = r.Cut?.Windows ?? 0,
    };

    /// <summary>The fitness result a finished job carries (the inverse of <see cref="Done"/>).</summary>
    public FitnessResult Result() =>
        CutKind is { } kind ? FitnessResult.Stopped(new ScreenCut(Enum.Parse<CutKind>(kind), CutBound, CutBar, CutWindowsSeen, CutWindows), Seconds, Tokens)
        : Valid ? new FitnessResult(true, Perplexity, null, Seconds) { Tokens = Tokens }
        : FitnessResult.Invalid(InvalidReason ?? "invalid", Seconds) with { Tokens = Tokens };
}
