// `worker`: one member of a cluster serving search evaluations with the search's own fitness (PruningFitness) on
// its model, after announcing the protocol (rendered from the RunIdentity) that the search checks.
using PrunerZero.Cluster;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Pruning;

namespace PrunerZero.Workflows;

/// <summary>Everything a worker serves with (the CLI builds it from its options).</summary>
public sealed record WorkerSettings
{
    /// <summary>The cluster: localhost[:PORT] or redis://HOST:PORT[/NAME].</summary>
    public required string Cluster { get; init; }
    public string? Name { get; init; }
    /// <summary>The IP address other members reach this one at; null: chosen by the cluster spec.</summary>
    public string? Advertise { get; init; }
    public required SessionOptions Session { get; init; }
    public required PruneTarget Target { get; init; }
    public required int ScreenWindows { get; init; }
    /// <summary>The search's stages (part of the protocol the search checks); empty: exact screens only.</summary>
    public IReadOnlyList<int> Stages { get; init; } = [];
}

/// <summary>A worker's plan: its settings checked, its identity hashed once, the protocol it announces.</summary>
public sealed record WorkerPlan(ClusterSpec Spec, string? Name, string? Advertise, string Protocol, string Device,
    SessionOptions Session, PruneTarget Target, int ScreenWindows, IReadOnlyList<int> Stages, RunIdentity Identity);

public static class WorkerWorkflow
{
    /// <summary>The cluster and the advertised address, checked before anything else.</summary>
    public static ClusterSpec CheckEndpoint(string cluster, string? advertise)
    {
        var spec = ClusterSpec.Parse(cluster);
        if (advertise != null && !System.Net.IPAddress.TryParse(advertise, out _))
            throw new PrunerZeroException($"{UserError.P("advertise")} {advertise}: not an IP address");
        return spec;
    }

    public static void CheckScreenWindows(int screenWindows)
    {
        if (screenWindows < 1) throw new PrunerZeroException($"{UserError.P("screen_windows")} must be at least 1, got {screenWindows}");
    }

    /// <summary>The plan: the inputs hashed (once) into the identity whose protocol the worker announces.</summary>
    public static WorkerPlan Plan(WorkerSettings s)
    {
        var spec = CheckEndpoint(s.Cluster, s.Advertise);
        CheckScreenWindows(s.ScreenWindows);
        SearchWorkflow.CheckStages(s.Stages, s.ScreenWindows);
        var identity = PruningFitness.Identity(s.Session, s.Target, s.ScreenWindows, s.Stages);
        return new WorkerPlan(spec, s.Name, s.Advertise, ProtocolId.Of(identity.ClusterProtocol), s.Session.Device.ToLowerInvariant(),
            s.Session with { EvalWindows = null }, s.Target, s.ScreenWindows, s.Stages, identity);
    }

    /// <summary>Joins the cluster and serves until <paramref name="ct"/> is cancelled; X and G are measured once, before the first job.</summary>
    public static void Run(WorkerPlan plan, TextWriter log, IProgress<string> progress, Action loaded, CancellationToken ct)
    {
        using var backend = Setup.Backend(plan.Device);   // a CUDA request without a GPU fails here, before joining
        PruneSession? session = null;
        try
        {
            WorkerHost.RunAsync(plan.Spec, plan.Name, plan.Advertise, plan.Protocol, plan.Device, () =>
            {
                session = new PruneSession(plan.Session, log, progress, plan.Identity);
                _ = session.DenseStats;   // X and G once, before the first job
                _ = session.Gradients;
                loaded();
                return new PruningFitness(session, plan.Target, backend, plan.ScreenWindows, stages: plan.Stages);
            }, log, ct).GetAwaiter().GetResult();
        }
        finally { session?.Dispose(); }
    }
}
