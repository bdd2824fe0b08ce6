using PrunerZero.Cluster;
using PrunerZero.Runtime;

namespace PrunerZero.Workflows;

/// <summary>What `worker` and `search` with a cluster share: the protocol both sides render from the same <see cref="RunIdentity"/>.</summary>
public static class ClusterWiring
{
    /// <summary>What a search connects with: the cluster, the protocol the workers must match, the batch and the wait.</summary>
    public static ClusterFitnessOptions SearchPlan(SearchSettings s, RunIdentity identity)
    {
        var spec = ClusterSpec.Parse(s.Cluster ?? throw new ArgumentException("no cluster in these settings"));
        if (s.Wait < 1) throw new PrunerZeroException($"{UserError.P("wait")} must be at least 1 second, got {s.Wait}");
        return new ClusterFitnessOptions { Spec = spec, Protocol = ProtocolId.Of(identity.ClusterProtocol), Batch = s.Batch, Wait = TimeSpan.FromSeconds(s.Wait) };
    }

    public static ClusterFitness ConnectSearch(SearchSettings s, RunIdentity identity, TextWriter log, CancellationToken ct)
    {
        var plan = SearchPlan(s, identity);
        log.WriteLine($"cluster: joining {plan.Spec} as a client; protocol {plan.Protocol}");
        return ClusterFitness.Connect(plan, log, ct);
    }
}
