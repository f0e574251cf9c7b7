// 05_imagenet (program: earlyexit-imagenet): early exit on ImageNet (1000 classes) with
// torchvision's pretrained MobileNetV2 plus exit heads distilled from it
// (examples/train/imagenet_exits.py). Preprocessing is torchvision's (resize 256, center crop 224,
// normalize).
//
//   earlyexit-imagenet                                      the small sample shipped in the repo
//   earlyexit-imagenet --data DIR --labels FILE             any folder (or .tar) of ImageNet JPEGs
//                                                           with a `filename label` list (0-based)
//   earlyexit-imagenet --limit 100 --policy max_prob --json out.json --plots out/
//
// The program is common/imagenet_demo.hpp, shared with earlyexit-imagenette (08_imagenette.cpp).
#include "common/imagenet_demo.hpp"

int main(int argc, char** argv) {
    return earlyexit::demo::run_imagenet_demo(
        argc, argv,
        {.program = "earlyexit-imagenet",
         .description = "earlyexit-imagenet: early-exit policies on ImageNet with MobileNetV2 and distilled exit heads "
                        "(live and replayed)",
         .data = "data/imagenet/sample",
         .data_help = "the shipped sample (100 ImageNet validation images)",
         .labels_help = "labels 0-based ILSVRC2012 indices",
         .weights = "models/mobilenet_v2_imagenet.safetensors",
         .calibration = "data/imagenet/calibration_trace",
         .dataset = "ImageNet",
         .model = "mobilenet_v2 + distilled exits"});
}
