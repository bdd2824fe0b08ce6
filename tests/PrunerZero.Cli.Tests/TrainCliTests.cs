using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>`train` end to end on the micro preset: its model card names the model's own folder (not the embedded default's).</summary>
public class TrainCliTests : TorchGuarded
{
    [Fact]
    public void TrainWritesAModelCardThatNamesItsOwnFolder()
    {
        var s = PipelineTests.Setup();
        string dir = Path.Combine(TestCheckpoints.TempDir("train"), "my-model");
        var (exit, _, err) = CliRunner.Run("train", "--out", dir, "--config", "micro", "--steps", "2", "--seed", "3", "--data", s.Calib);
        Assert.True(exit == 0, err);
        string card = File.ReadAllText(Path.Combine(dir, "README.md"));
        Assert.StartsWith("# my-model\n", card);
        Assert.Contains($"prunerzero eval --model {dir}", card);
        Assert.DoesNotContain("pz-llama-tiny", card);
        Assert.Contains("| **WikiText-2 test perplexity** |", card);
    }
}
