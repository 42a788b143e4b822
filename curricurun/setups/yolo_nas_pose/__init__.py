"""YOLO-NAS-Pose (super-gradients' recipes): model, keypoint geometry, OKS metric, loss and setup."""
