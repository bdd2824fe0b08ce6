// Each worker's grain must run on that worker's silo, next to its model. Orleans has no built-in
// "this silo" placement a client can ask for, so this is a custom placement strategy (the documented
// extension point): the grain key is the silo address (SiloAddress.ToParsableString) and the director
// places the activation there, or fails when that silo is not an active member.
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace PrunerZero.Cluster;

[Serializable, GenerateSerializer, Immutable]
public sealed class OnSiloPlacement : PlacementStrategy
{
    public static readonly OnSiloPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class OnSiloPlacementAttribute() : PlacementAttribute(OnSiloPlacement.Instance);

public sealed class OnSiloPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        string key = target.GrainIdentity.Key.ToString()!;
        foreach (var silo in context.GetCompatibleSilos(target))
            if (silo.ToParsableString() == key) return Task.FromResult(silo);
        throw new SiloUnavailableException($"worker silo {key} is not an active member of the cluster");
    }
}
