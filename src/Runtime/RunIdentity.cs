// What makes two fitness values comparable: the content of the model (its config, weights and tokenizer files), of
// the evaluation data and of the calibration text, plus the settings that change a number, as ordered key/value
// pairs. Paths are not part of it: a model folder moved (or copied to another machine) with the same content is
// the same model. Computed once per process (hashing reads every byte: about one second per 1-2 GB) and rendered
// for each user:
//   ClusterProtocol   what every worker announces and `search --cluster` checks (key=value; key=value; ...)
//   StoreInputs       the run store's input.* parameters (a resume on other files with the same names is refused)
//   ModelSha256       the G cache key's model part (GradientStats.CacheKey)
namespace PrunerZero.Runtime;

public sealed class RunIdentity
{
    /// <summary><see cref="ContentHash.OfCheckpoint"/> of the model folder.</summary>
    public string ModelSha256 { get; }
    /// <summary><see cref="ContentHash.OfFile"/> of the evaluation data.</summary>
    public string DataSha256 { get; }
    /// <summary><see cref="ContentHash.OfFile"/> of the calibration text.</summary>
    public string CalibSha256 { get; }
    /// <summary>Every setting that changes a fitness value, in a fixed order.</summary>
    public IReadOnlyList<(string Key, string Value)> Settings { get; }

    public RunIdentity(string modelSha256, string dataSha256, string calibSha256, IEnumerable<(string Key, string Value)> settings)
    {
        ModelSha256 = modelSha256;
        DataSha256 = dataSha256;
        CalibSha256 = calibSha256;
        Settings = [.. settings];
        foreach (var (k, v) in Settings)
            if (k.Contains('=') || k.Contains(';') || v.Contains("; "))
                throw new ArgumentException($"run identity setting '{k}={v}': keys hold no '=' or ';', values no \"; \"");
    }

    /// <summary>Hashes the three inputs (each read once, here).</summary>
    public static RunIdentity Of(string modelDir, string dataPath, string calibPath, IEnumerable<(string Key, string Value)> settings) =>
        new(ContentHash.OfCheckpoint(modelDir), ContentHash.OfFile(dataPath), ContentHash.OfFile(calibPath), settings);

    /// <summary>The same data, calibration and settings on another model (a transfer model, hashed by its caller).</summary>
    public RunIdentity WithModel(string modelSha256) => new(modelSha256, DataSha256, CalibSha256, Settings);

    /// <summary>The cluster protocol: "model_sha256=…; data_sha256=…; calib_sha256=…; key=value; …" (parsed back by ProtocolId.Differences).</summary>
    public string ClusterProtocol =>
        string.Join("; ", new[] { ("model_sha256", ModelSha256), ("data_sha256", DataSha256), ("calib_sha256", CalibSha256) }
            .Concat(Settings).Select(kv => $"{kv.Item1}={kv.Item2}"));

    /// <summary>The run store's inputs (stored as input.KEY; these key names are what every stored run holds).</summary>
    public IReadOnlyDictionary<string, string> StoreInputs => new Dictionary<string, string>
    {
        ["model_sha256"] = ModelSha256,
        ["dataset_sha256"] = DataSha256,
        ["calibration_sha256"] = CalibSha256,
    };

    public override string ToString() => ClusterProtocol;
}
