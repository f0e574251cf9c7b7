// 08_imagenette (program: earlyexit-imagenette): early exit on Imagenette (10 ImageNet classes)
// with torchvision's pretrained MobileNetV2, unchanged: its final head is the backbone's own
// classifier restricted to the 10 classes, and its exit heads, from the early blocks on, are
// fitted with labels on Imagenette training images (examples/train/imagenet_exits.py). The
// policies calibrate on held-out training images; the program reports on the 500 Imagenette
// images that are ILSVRC2012 validation images (the backbone never trained on them), shipped in
// data/imagenette/val/.
//
//   earlyexit-imagenette                                    the 500 validation images
//   earlyexit-imagenette --data DIR --labels FILE           any folder (or .tar) of JPEGs with a
//                                                           `filename label` list (0-9, classes.txt)
//
// The program is common/imagenet_demo.hpp, shared with earlyexit-imagenet (05_imagenet.cpp).
#include "common/imagenet_demo.hpp"

int main(int argc, char** argv) {
    return earlyexit::demo::run_imagenet_demo(
        argc, argv,
        {.program = "earlyexit-imagenette",
         .description = "earlyexit-imagenette: early-exit policies on Imagenette (10 ImageNet classes) with MobileNetV2 "
                        "and exit heads fitted on Imagenette training images (live and replayed)",
         .data = "data/imagenette/val",
         .data_help = "the 500 shipped Imagenette validation images (ILSVRC2012_val_*)",
         .labels_help = "labels 0-9 as in data/imagenette/classes.txt",
         .weights = "models/mobilenet_v2_imagenette.safetensors",
         .calibration = "data/imagenette/calibration_trace",
         .dataset = "Imagenette",
         .model = "mobilenet_v2 (10-class classifier) + fitted exits"});
}
