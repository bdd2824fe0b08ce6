using System.Diagnostics;
using PrunerZero.Runtime.Tests;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// A seed means the same run in every process: the built CLI, started twice as separate processes (so per-process
/// randomization such as System.HashCode's differs), writes byte-identical checkpoints for the same seed.
/// </summary>
public class SeedReproducibilityTests : TorchGuarded
{
    /// <summary>Runs prunerzero.dll (copied beside the tests by the project reference) in a process of its own.</summary>
    static (int Exit, string Err) RunProcess(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "prunerzero.dll");
        Assert.True(File.Exists(dll), $"{dll} not built");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(300_000)) { p.Kill(entireProcessTree: true); Assert.Fail($"prunerzero {string.Join(' ', args)} did not finish in 5 minutes"); }
        _ = stdout.Result;
        return (p.ExitCode, err);
    }

    [Fact]
    public void TrainWithTheSameSeedWritesTheSameCheckpointInTwoProcesses()
    {
        var s = PipelineTests.Setup();
        string root = TestCheckpoints.TempDir("train-seed");
        var dirs = new[] { Path.Combine(root, "a"), Path.Combine(root, "b") };
        foreach (var d in dirs)
        {
            var (exit, err) = RunProcess("train", "--out", d, "--config", "micro", "--steps", "4", "--seed", "7", "--data", s.Calib, "--no-eval");
            Assert.True(exit == 0, err);
        }
        foreach (var f in new[] { "model.safetensors", "config.json", "tokenizer.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(dirs[0], f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dirs[1], f))), $"{f} differs between two processes with --seed 7");
    }

    [Fact]
    public void SynthWithTheSameSeedWritesTheSameCheckpointInTwoProcesses()
    {
        string root = TestCheckpoints.TempDir("synth-seed");
        var dirs = new[] { Path.Combine(root, "a"), Path.Combine(root, "b") };
        foreach (var d in dirs)
        {
            var (exit, err) = RunProcess("synth", "--preset", "tiny", "--layers", "1", "--dtype", "f32", "--seed", "5", "--out", d);
            Assert.True(exit == 0, err);
        }
        foreach (var f in new[] { "model.safetensors", "config.json" })
            Assert.True(File.ReadAllBytes(Path.Combine(dirs[0], f)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dirs[1], f))), $"{f} differs between two processes with --seed 5");
    }
}
