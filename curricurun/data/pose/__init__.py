"""The pose data pipeline: COCO keypoint splits (local or from the Hub), keypoint geometry and SG's augmentations.

- :mod:`.coco` reads COCO-format person-keypoint splits as super-gradients' ``COCOPoseEstimationDataset`` does.
- :mod:`.keypoints` holds one image's instances (:class:`~.keypoints.PoseSample`) and the geometry on them.
- :mod:`.augment` is super-gradients' train and validation pipelines for YOLO-NAS-Pose.

The model side (network, loss, OKS metric) stays in :mod:`curricurun.setups.yolo_nas_pose`; the offline data
builder is ``tools/build_offline_pose_data.py`` (``make pose-data``).
"""
