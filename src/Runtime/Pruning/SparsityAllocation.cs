using PrunerZero.Kernels;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrunerZero.Runtime.Pruning;

/// <summary>
/// The unstructured sparsity of every prunable linear, block by block (<see cref="LinearKinds.All"/> order within a
/// block): uniform, OWL's outlier-weighted profile (<see cref="Owl"/>), or a profile read from a file. Blocks of
/// LLaMA-family models hold the same weight count, so a profile whose block mean is the target meets it overall.
/// </summary>
public sealed class SparsityAllocation
{
    public const string Format = "prunerzero-allocation/1";

    /// <summary>uniform, owl(m=…,lambda=…), or the profile file's own method name.</summary>
    public string Method { get; }
    public double Target { get; }
    readonly double[][] _sparsity;

    public SparsityAllocation(string method, double target, double[][] sparsity)
    {
        Method = method;
        Target = target;
        for (int b = 0; b < sparsity.Length; b++)
        {
            if (sparsity[b].Length != LinearKinds.All.Length)
                throw new ArgumentException($"block {b} has {sparsity[b].Length} sparsities, expected {LinearKinds.All.Length}", nameof(sparsity));
            foreach (var s in sparsity[b])
                if (!(s >= 0 && s < 1))
                    throw new PrunerZeroException($"allocation {method}: block {b} gets sparsity {s}, outside [0, 1) (target {target}); lower the spread or the target");
        }
        _sparsity = sparsity;
    }

    public int Blocks => _sparsity.Length;

    /// <summary>Set when a profile file was made for another model (its model_sha256): applied block by block all the same.</summary>
    public string? OtherModel { get; init; }

    public static SparsityAllocation Uniform(int blocks, double target) =>
        new("uniform", target, Enumerable.Range(0, blocks).Select(_ => LinearKinds.All.Select(_ => target).ToArray()).ToArray());

    /// <summary>One sparsity per block, the same for each of its linears (as OWL's code does).</summary>
    public static SparsityAllocation PerBlock(string method, double target, IReadOnlyList<double> blocks) =>
        new(method, target, blocks.Select(s => LinearKinds.All.Select(_ => s).ToArray()).ToArray());

    public double this[int block, LinearKind kind] => _sparsity[block][(int)kind];

    /// <summary>Block <paramref name="block"/>'s sparsity when all its linears share one, else their mean.</summary>
    public double BlockSparsity(int block) => _sparsity[block].All(s => s == _sparsity[block][0]) ? _sparsity[block][0] : _sparsity[block].Average();

    /// <summary>The share of all weights pruned, given each linear kind's weight count.</summary>
    public double Overall(IReadOnlyList<long> kindSizes)
    {
        double pruned = 0, total = 0;
        for (int b = 0; b < Blocks; b++)
            foreach (var k in LinearKinds.All)
            {
                pruned += this[b, k] * kindSizes[(int)k];
                total += kindSizes[(int)k];
            }
        return pruned / total;
    }

    public PruneTarget For(int block, LinearKind kind) => new(this[block, kind]);

    public bool IsUniform => _sparsity.All(b => b.All(s => s == Target));

    /// <summary>For protocol strings and reports: the method and the per-block sparsities.</summary>
    public override string ToString() => IsUniform ? "uniform" :
        $"{Method} [{string.Join(", ", Enumerable.Range(0, Blocks).Select(b => BlockSparsity(b).ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)))}]";

    /// <summary>The profile as a JSON file (format, method, target, model identity, per-block or per-linear sparsities).</summary>
    public string ToJson(string modelSha256)
    {
        var o = new JsonObject
        {
            ["format"] = Format, ["method"] = Method, ["target"] = Target, ["model_sha256"] = modelSha256,
        };
        if (_sparsity.All(b => b.All(s => s == b[0]))) o["blocks"] = new JsonArray(_sparsity.Select(b => (JsonNode)b[0]).ToArray());
        else
        {
            var linears = new JsonObject();
            for (int b = 0; b < Blocks; b++)
                foreach (var k in LinearKinds.All) linears[$"model.layers.{b}.{k.HfName()}"] = this[b, k];
            o["linears"] = linears;
        }
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>
    /// Reads a profile written by <see cref="ToJson"/> (or by hand): refused in one line for another block count or
    /// another target, when a sparsity is missing or out of range, or when its weight-weighted mean (weights per
    /// linear: <paramref name="kindSizes"/>) misses the target; made for another model than <paramref name="modelSha256"/>,
    /// it is marked (<see cref="OtherModel"/>).
    /// </summary>
    public static SparsityAllocation Load(string path, int blocks, IReadOnlyList<long> kindSizes, double target, string modelSha256)
    {
        string file = Path.GetFileName(path);
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new PrunerZeroException($"{path}: an allocation profile must be a JSON object"); }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not a JSON allocation profile ({e.Message})"); }
        if (JsonTypes.String(o, "format", file) != Format) throw new PrunerZeroException($"{path}: 'format' must be \"{Format}\"");
        string method = JsonTypes.String(o, "method", file) ?? "file";
        double fileTarget = JsonTypes.Number(o, "target", file) ?? throw new PrunerZeroException($"{path}: 'target' is missing");
        if (Math.Abs(fileTarget - target) > 1e-9)
            throw new PrunerZeroException($"{path}: the profile is for sparsity {fileTarget}, not {target}");
        string? madeFor = JsonTypes.String(o, "model_sha256", file);
        var s = new double[blocks][];
        if (o["blocks"] is JsonArray arr)
        {
            if (arr.Count != blocks) throw new PrunerZeroException($"{path}: 'blocks' has {arr.Count} sparsities, the model has {blocks} blocks");
            for (int b = 0; b < blocks; b++)
            {
                double v = arr[b] is JsonValue jv && jv.TryGetValue<double>(out var d) ? d : throw new PrunerZeroException($"{path}: blocks[{b}] must be a number, found {JsonTypes.Found(arr[b])}");
                s[b] = LinearKinds.All.Select(_ => v).ToArray();
            }
        }
        else if (o["linears"] is JsonObject lin)
        {
            for (int b = 0; b < blocks; b++)
                s[b] = LinearKinds.All.Select(k => JsonTypes.Number(lin, $"model.layers.{b}.{k.HfName()}", file)
                    ?? throw new PrunerZeroException($"{path}: 'linears' has no sparsity for model.layers.{b}.{k.HfName()}")).ToArray();
            if (lin.Count != blocks * LinearKinds.All.Length)
                throw new PrunerZeroException($"{path}: 'linears' has {lin.Count} entries, the model has {blocks * LinearKinds.All.Length} prunable linears");
        }
        else throw new PrunerZeroException($"{path}: needs 'blocks' (one sparsity per block) or 'linears' (one per linear)");
        var result = new SparsityAllocation(method, target, s)
        {
            // Another model with the same blocks may use a profile (e.g. one searched on a smaller sibling): said, not refused.
            OtherModel = madeFor is not null && !string.Equals(madeFor, modelSha256, StringComparison.OrdinalIgnoreCase) ? madeFor : null,
        };
        double mean = result.Overall(kindSizes);
        if (Math.Abs(mean - target) > 1e-6)
            throw new PrunerZeroException($"{path}: the profile prunes {mean:0.######} of the weights overall, not the target {target}");
        return result;
    }
}

/// <summary>
/// How a session allocates unstructured sparsity over blocks: uniform, OWL with its m and λ, or a profile file.
/// Resolved per model and target by <see cref="PruneSession.AllocationFor"/>.
/// </summary>
public sealed record AllocationSpec(string Kind, double M = Owl.DefaultM, double Lambda = Owl.DefaultLambda, string? File = null)
{
    public static readonly AllocationSpec Uniform = new("uniform");

    public bool IsUniform => Kind == "uniform";

    /// <summary>"uniform", "owl", or a profile file's path; m and λ matter only for owl.</summary>
    public static AllocationSpec Parse(string text, double? m, double? lambda)
    {
        string t = text.Trim();
        var spec = t.Equals("uniform", StringComparison.OrdinalIgnoreCase) ? Uniform
            : t.Equals("owl", StringComparison.OrdinalIgnoreCase) ? new AllocationSpec("owl", m ?? Owl.DefaultM, lambda ?? Owl.DefaultLambda)
            : System.IO.File.Exists(t) ? new AllocationSpec("file", File: Path.GetFullPath(t))
            : throw new PrunerZeroException($"{UserError.P("allocation")} must be uniform, owl or an allocation profile file, got '{text}' (no such file)");
        if (spec.Kind != "owl" && (m is not null || lambda is not null))
            throw new PrunerZeroException($"{UserError.P(m is not null ? "owl_m" : "owl_lambda")} applies to the owl allocation, not to {spec.Kind}");
        return spec;
    }

    /// <summary>For run identities and protocols: the method and its parameters, a file by its content (never its path).</summary>
    public string Id => Kind switch
    {
        "owl" => Owl.Name(M, Lambda),
        "file" => $"file(sha256={ContentHash.OfFile(File!)})",
        _ => "uniform",
    };
}
