// What makes two fitness values comparable, announced by every worker and checked by the search: the protocol
// rendered from a RunIdentity (Runtime/RunIdentity.cs: content hashes of the model, the evaluation data and the
// calibration text, plus the settings). Paths do not count (machines keep their copies in different places);
// contents do. Here: the comparison, field by field.
namespace PrunerZero.Cluster;

public static class ProtocolId
{
    /// <summary>
    /// The version of what travels between search and worker (Contracts.cs), announced with the protocol: a worker of
    /// another version is refused by name instead of failing on its first job. 2: screens carry their bar and cut.
    /// </summary>
    public const string Wire = "cluster_wire=2";

    /// <summary>A run identity's cluster protocol with the wire version.</summary>
    public static string Of(string clusterProtocol) => $"{clusterProtocol}; {Wire}";

    /// <summary>The fields that differ between two protocols, "key: A vs B", empty when they agree.</summary>
    public static List<string> Differences(string expected, string actual)
    {
        var a = Split(expected);
        var b = Split(actual);
        return [.. a.Keys.Union(b.Keys).Order(StringComparer.Ordinal)
            .Where(k => a.GetValueOrDefault(k) != b.GetValueOrDefault(k))
            .Select(k => $"{k}: {Short(a.GetValueOrDefault(k))} here vs {Short(b.GetValueOrDefault(k))} on the worker")];
    }

    static Dictionary<string, string> Split(string p) =>
        p.Split("; ", StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2))
         .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);

    static string Short(string? v) => v is null ? "(none)" : v.Length == 64 && v.All(char.IsAsciiHexDigit) ? v[..12] : v;
}
