"""Faces in an image: detection (backends by name), 68 landmarks, alignment and crops."""

from emolens.faces.align import CROPS, CropSpec, align_face, crop_box, crop_face, get_crop
from emolens.faces.detect import Detection, FaceDetector, get_detector, list_detectors, register_detector
from emolens.faces.landmarks import LandmarkPredictor

__all__ = [
    "CROPS", "CropSpec", "Detection", "FaceDetector", "LandmarkPredictor", "align_face", "crop_box",
    "crop_face", "get_crop", "get_detector", "list_detectors", "register_detector",
]
