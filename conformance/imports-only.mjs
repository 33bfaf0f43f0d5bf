// Benchmark baseline (bench/conformance.sh): the process start and module loading of the JS
// side of the CMK job, without a single request.
import "@azure/identity";
import "@azure/arm-resources";
import "@azure/arm-msi";
import "@azure/arm-keyvault";
import "@azure/arm-authorization";
import "@azure/arm-containerregistry";
import "@azure/keyvault-keys";
