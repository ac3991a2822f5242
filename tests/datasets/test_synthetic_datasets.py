"""The synthetic datasets: shapes, dtypes, labels, determinism, padding, balance and geometry."""

import numpy as np
import pytest

# name -> (number of classes with default params, native dimension)
SYNTHETIC = {"spirals": (2, 2), "moons": (2, 2), "clusters": (2, 1), "spheres": (2, 2), "complex_moons": (2, 2)}
DEFAULT_SAMPLES = {"spirals": 1000, "moons": 500, "clusters": 500, "spheres": 500, "complex_moons": 500}
PADDED = ["spirals", "moons", "complex_moons"]  # native 2-D problems whose extra columns are noise


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_default_output_shapes_dtypes_and_labels(generate, name):
    data = generate(name)
    assert data.X.shape == (DEFAULT_SAMPLES[name], 2)
    assert data.X.dtype == np.float32
    assert data.y.shape == (DEFAULT_SAMPLES[name],)
    assert data.y.dtype == np.int64
    assert data.num_classes == SYNTHETIC[name][0]
    assert set(data.y.tolist()) == set(range(data.num_classes))
    assert np.isfinite(data.X).all()


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_same_seed_same_arrays_other_seed_different(generate, name):
    first, again, other = generate(name, seed=7), generate(name, seed=7), generate(name, seed=8)
    assert np.array_equal(first.X, again.X) and np.array_equal(first.y, again.y)
    assert not np.array_equal(first.X, other.X)
    assert not np.array_equal(first.y, other.y)  # the shuffle differs too


@pytest.mark.parametrize(
    ("name", "params", "sizes"),
    [
        ("spirals", {"n_samples": 501}, [251, 250]),
        ("moons", {"n_samples": 7}, [4, 3]),
        ("clusters", {"n_samples": 10, "n_centers": 4}, [3, 3, 2, 2]),
        ("spheres", {"n_samples": 11, "n_shells": 3}, [4, 4, 3]),
        ("complex_moons", {"n_samples": 9}, [5, 4]),
    ],
)
def test_classes_are_balanced(generate, name, params, sizes):
    data = generate(name, **params)
    assert data.num_classes == len(sizes)
    assert np.bincount(data.y, minlength=len(sizes)).tolist() == sizes


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_rows_are_shuffled(generate, name):
    y = generate(name, n_samples=500).y
    # Unshuffled output would hold one class in the whole first half.
    assert 50 < np.count_nonzero(y[:250] == 0) < 200


@pytest.mark.parametrize("name", PADDED)
def test_extra_dimensions_are_gaussian_noise_of_std_noise(generate, name):
    data = generate(name, n_samples=4000, noise=0.3, input_dim=5)
    assert data.X.shape == (4000, 5)
    padding = data.X[:, 2:]
    assert np.allclose(padding.mean(axis=0), 0.0, atol=0.03)
    assert np.allclose(padding.std(axis=0), 0.3, rtol=0.05)


@pytest.mark.parametrize("name", PADDED)
def test_padding_is_zero_without_noise(generate, name):
    data = generate(name, n_samples=500, noise=0.0, input_dim=4)
    assert data.X.shape == (500, 4)
    assert not data.X[:, 2:].any()
    assert data.X[:, :2].any()


def test_spirals_without_noise_lie_on_two_arms_half_a_turn_apart(generate):
    data = generate("spirals", noise=0.0, rotations=2.0)
    radius = np.linalg.norm(data.X, axis=1)
    assert radius.max() <= 4 * np.pi + 1e-5  # 2 turns, radius grows by 2*pi per turn
    assert radius.max() > 3.9 * np.pi
    # On the arm, the angle equals the radius, plus pi for class 1.
    angle = radius + np.pi * data.y
    expected = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    assert np.allclose(data.X, expected, atol=1e-4)


def test_spirals_rotations_sets_the_number_of_turns(generate):
    radius = np.linalg.norm(generate("spirals", noise=0.0, rotations=0.5).X, axis=1)
    assert 0.95 * np.pi < radius.max() <= np.pi + 1e-5


def test_moons_without_noise_lie_on_their_half_circles(generate):
    data = generate("moons", noise=0.0)
    upper, lower = data.X[data.y == 0], data.X[data.y == 1]
    assert np.allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5)
    assert (upper[:, 1] >= -1e-6).all()
    assert np.allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5)
    assert (lower[:, 1] <= 0.5 + 1e-6).all()


def test_moons_noise_spreads_points_off_the_circles(generate):
    upper = generate("moons", n_samples=4000, noise=0.2).X
    distance = np.abs(np.linalg.norm(upper, axis=1) - 1.0)
    assert distance.max() > 0.3


def test_clusters_one_tight_blob_per_centre_inside_the_box(generate):
    data = generate("clusters", n_samples=400, n_centers=4, cluster_std=0.01, input_dim=3)
    assert data.X.shape == (400, 3)
    assert data.num_classes == 4
    for label in range(4):
        points = data.X[data.y == label]
        centre = points.mean(axis=0)
        assert np.abs(centre).max() < 10.0
        assert np.linalg.norm(points - centre, axis=1).max() < 0.1


def test_clusters_spread_is_cluster_std(generate):
    data = generate("clusters", n_samples=4000, cluster_std=2.5)
    for label in range(2):
        points = data.X[data.y == label]
        assert np.allclose(points.std(axis=0), 2.5, rtol=0.06)


def test_clusters_centres_depend_on_the_seed(generate):
    def centres(seed):
        data = generate("clusters", seed=seed, cluster_std=0.01)
        return np.array([data.X[data.y == label].mean(axis=0) for label in range(2)])

    assert np.allclose(centres(3), centres(3))
    assert not np.allclose(centres(3), centres(4), atol=0.5)


def test_clusters_in_one_dimension(generate):
    data = generate("clusters", n_samples=3, n_centers=3, input_dim=1)
    assert data.X.shape == (3, 1)
    assert sorted(data.y.tolist()) == [0, 1, 2]


@pytest.mark.parametrize("input_dim", [2, 3, 7])
def test_spheres_without_noise_have_radius_label_plus_one(generate, input_dim):
    data = generate("spheres", noise=0.0, n_shells=3, input_dim=input_dim)
    assert data.X.shape == (500, input_dim)
    assert data.num_classes == 3
    assert np.allclose(np.linalg.norm(data.X, axis=1), data.y + 1, atol=1e-5)


def test_spheres_points_cover_the_whole_shell(generate):
    data = generate("spheres", n_samples=4000, noise=0.0, input_dim=3)
    # Uniform on a sphere: every coordinate averages to 0 and takes both signs.
    assert np.allclose(data.X.mean(axis=0), 0.0, atol=0.1)
    assert (data.X.min(axis=0) < -1.5).all() and (data.X.max(axis=0) > 1.5).all()


def test_spheres_noise_is_radial(generate):
    data = generate("spheres", n_samples=4000, noise=0.1)
    offset = np.linalg.norm(data.X, axis=1) - (data.y + 1)
    assert abs(offset.mean()) < 0.01
    assert offset.std() == pytest.approx(0.1, rel=0.05)


def test_complex_moons_each_class_is_half_moon_half_cluster(generate):
    data = generate("complex_moons", n_samples=500, noise=0.0)
    upper, lower = data.X[data.y == 0], data.X[data.y == 1]
    on_upper = np.isclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5) & (upper[:, 1] >= -1e-6)
    on_lower = np.isclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5) & (lower[:, 1] <= 0.5 + 1e-6)
    assert on_upper.sum() == 125 and on_lower.sum() == 125
    # The rest of each class is a blob just beyond the other class's moon.
    assert np.linalg.norm(upper[~on_upper] - [1.0, -1.25], axis=1).max() < 1.2
    assert np.linalg.norm(lower[~on_lower] - [0.0, 1.75], axis=1).max() < 1.2


def test_complex_moons_smallest_size_has_every_part(generate):
    data = generate("complex_moons", n_samples=4, noise=0.0)
    assert data.X.shape == (4, 2)
    upper, lower = data.X[data.y == 0], data.X[data.y == 1]
    assert np.isclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5).sum() == 1  # one on the moon, one in the blob
    assert np.isclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5).sum() == 1
