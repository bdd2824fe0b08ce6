using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>The torch device of --device: cpu, or cuda when this TorchSharp build has CUDA (refused in one line otherwise, never a silent CPU run).</summary>
public static class Devices
{
    public static Device Parse(string name) => name.ToLowerInvariant() switch
    {
        "cpu" => CPU,
        "cuda" => cuda.is_available() ? CUDA
            : throw new PrunerZeroException($"{UserError.P("device")} cuda: this TorchSharp build has no CUDA (the TorchSharp-cpu package, or no GPU); build with -p:TorchSharpPackage=TorchSharp-cuda-linux on a CUDA machine"),
        _ => throw new PrunerZeroException($"{UserError.P("device")} must be cpu or cuda, got '{name}'"),
    };
}
