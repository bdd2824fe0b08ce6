using System.Text.Json;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// A damaged G cache entry is never used: its checksum (SHA-256 over the data section, in the header) is verified on
/// every load; a mismatch or a truncated file is reported on stderr naming the file, and G is recomputed, so the
/// result equals the undamaged run's.
/// </summary>
public class CacheIntegrityTests : TorchGuarded
{
    static (string Model, string Wiki, string Calib, string Cache) Setup()
    {
        var s = PipelineTests.Setup();
        // Five blocks: about 150 KiB of G, so 64 KiB of damage is a part of the entry, not all of it.
        var config = TestCheckpoints.Config();
        config["num_hidden_layers"] = 5;
        return (TestCheckpoints.Write(config, seed: 23), s.Wiki, s.Calib, s.Cache);
    }

    static (double Perplexity, byte[] Weights, string Err) Prune((string Model, string Wiki, string Calib, string Cache) s)
    {
        string outDir = Path.Combine(TestCheckpoints.TempDir("cache-out"), "pruned");
        var (exit, stdout, err) = CliRunner.Run(["prune", .. PipelineTests.Common(s), "--metric", "pruner-zero", "--out", outDir, "--eval", "--windows", "2", "--json"]);
        Assert.True(exit == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        return (doc.RootElement.GetProperty("perplexity").GetDouble(), File.ReadAllBytes(Path.Combine(outDir, "model.safetensors")), err);
    }

    [Theory]
    [InlineData("zeros")]
    [InlineData("nan")]
    [InlineData("truncated")]
    public void DamagedGradientCacheEntryIsReportedAndRecomputed(string damage)
    {
        var s = Setup();
        var clean = Prune(s);
        string entry = Assert.Single(Directory.GetFiles(Path.Combine(s.Cache, "gradients"), "*.safetensors"));
        Assert.Null(SafeTensors.ChecksumProblem(entry));
        var (_, dataStart) = SafeTensors.ReadHeader(entry);
        var bytes = File.ReadAllBytes(entry);
        Assert.True(bytes.Length - dataStart > 100 << 10, $"entry too small for the test: {bytes.Length} bytes");
        switch (damage)
        {
            case "zeros": Array.Clear(bytes, (int)dataStart + 4096, 64 << 10); break;
            case "nan":
                for (int i = (int)dataStart + 4096; i < dataStart + 4096 + (64 << 10); i += 4)
                    BitConverter.GetBytes(float.NaN).CopyTo(bytes, i);
                break;
            default: bytes = bytes[..(int)(dataStart + (bytes.Length - dataStart) / 2)]; break;
        }
        File.WriteAllBytes(entry, bytes);

        var again = Prune(s);
        var line = Assert.Single(again.Err.Split('\n'), l => l.Contains("damaged"));
        Assert.Contains(entry, line);
        Assert.Contains("recomputing", line);
        Assert.Contains("gradients: computed", again.Err);
        Assert.Equal(clean.Perplexity, again.Perplexity);
        Assert.Equal(clean.Weights, again.Weights);
        // The damaged entry was replaced by the recomputation: the next run uses it, verified.
        Assert.Null(SafeTensors.ChecksumProblem(entry));
        var third = Prune(s);
        Assert.Contains($"gradients: cached {entry} (checksum verified)", third.Err);
        Assert.Equal(clean.Perplexity, third.Perplexity);
    }
}
